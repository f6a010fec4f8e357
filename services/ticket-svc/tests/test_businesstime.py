"""Business-time arithmetic: weekends, holidays, split shifts, time zones, DST, round trips."""

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ticket_svc.service.businesstime import (
    BusinessCalendar,
    CalendarError,
    add_business_minutes,
    add_business_seconds,
    business_minutes,
    business_seconds,
    format_hhmm,
    is_business_time,
    parse_hhmm,
)

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI")


def office(tz="UTC", start="09:00", end="17:00", holidays=(), days=WEEKDAYS) -> BusinessCalendar:
    return BusinessCalendar.from_hours(tz, [(d, start, end) for d in days], holidays)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


# 2026-03-02 is a Monday.
MON = (2026, 3, 2)


def test_always_open_is_wall_clock_time():
    cal = BusinessCalendar.always_open()
    start = utc(2026, 3, 7, 22, 30)  # a Saturday night
    assert business_minutes(cal, start, start + timedelta(hours=30)) == 30 * 60
    assert add_business_minutes(cal, start, 90) == start + timedelta(minutes=90)


def test_within_one_day():
    cal = office()
    assert business_minutes(cal, utc(*MON, 9), utc(*MON, 17)) == 480
    assert business_minutes(cal, utc(*MON, 8), utc(*MON, 10, 30)) == 90
    assert business_minutes(cal, utc(*MON, 16), utc(*MON, 20)) == 60
    assert business_minutes(cal, utc(*MON, 18), utc(*MON, 20)) == 0
    assert add_business_minutes(cal, utc(*MON, 9, 15), 30) == utc(*MON, 9, 45)


def test_starting_before_opening_and_after_closing():
    cal = office()
    assert add_business_minutes(cal, utc(*MON, 6), 60) == utc(*MON, 10)
    assert add_business_minutes(cal, utc(*MON, 18), 60) == utc(2026, 3, 3, 10)


def test_a_target_ending_at_closing_time_is_due_at_closing_time():
    cal = office()
    assert add_business_minutes(cal, utc(*MON, 9), 480) == utc(*MON, 17)
    assert add_business_minutes(cal, utc(*MON, 9), 481) == utc(2026, 3, 3, 9, 1)


def test_weekends_are_skipped():
    cal = office()
    friday_4pm = utc(2026, 3, 6, 16)
    monday_10am = utc(2026, 3, 9, 10)
    assert add_business_minutes(cal, friday_4pm, 120) == monday_10am
    assert business_minutes(cal, friday_4pm, monday_10am) == 120
    saturday = utc(2026, 3, 7, 12)
    assert business_minutes(cal, saturday, utc(2026, 3, 8, 23)) == 0
    assert add_business_minutes(cal, saturday, 1) == utc(2026, 3, 9, 9, 1)
    # A whole week is five business days.
    assert business_minutes(cal, utc(*MON, 0), utc(2026, 3, 9, 0)) == 5 * 480


def test_holidays_are_closed():
    cal = office(holidays=[date(2026, 3, 9)])  # the Monday after
    friday_4pm = utc(2026, 3, 6, 16)
    assert add_business_minutes(cal, friday_4pm, 120) == utc(2026, 3, 10, 10)
    assert business_minutes(cal, friday_4pm, utc(2026, 3, 10, 10)) == 120
    assert business_minutes(cal, utc(2026, 3, 9, 0), utc(2026, 3, 10, 0)) == 0
    assert not is_business_time(cal, utc(2026, 3, 9, 12))
    assert is_business_time(cal, utc(2026, 3, 10, 12))


def test_consecutive_holidays_and_a_weekend():
    cal = office(holidays=[date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 28)])
    # Wed 23 Dec 16:00 + 2h: Thu, Fri holidays, weekend, Mon holiday -> Tue 29 Dec 10:00.
    assert add_business_minutes(cal, utc(2026, 12, 23, 16), 120) == utc(2026, 12, 29, 10)


def test_split_shifts():
    cal = BusinessCalendar.from_hours(
        "UTC", [(d, "09:00", "12:00") for d in WEEKDAYS] + [(d, "13:00", "17:00") for d in WEEKDAYS]
    )
    assert add_business_minutes(cal, utc(*MON, 11), 120) == utc(*MON, 14)
    assert business_minutes(cal, utc(*MON, 11), utc(*MON, 14)) == 120
    assert add_business_minutes(cal, utc(*MON, 11), 60) == utc(*MON, 12)  # due at the break


def test_hours_running_to_midnight_join_the_next_morning():
    cal = BusinessCalendar.from_hours("UTC", [("MON", "20:00", "24:00"), ("TUE", "00:00", "04:00")])
    assert add_business_minutes(cal, utc(*MON, 23), 120) == utc(2026, 3, 3, 1)
    assert business_minutes(cal, utc(*MON, 20), utc(2026, 3, 3, 4)) == 480


def test_time_zone_of_the_calendar():
    cal = office("America/New_York")  # EST (UTC-5) in early March 2026
    assert add_business_minutes(cal, utc(*MON, 14), 60) == utc(*MON, 15)  # 09:00 EST = 14:00Z
    assert add_business_minutes(cal, utc(*MON, 12), 60) == utc(*MON, 15)  # 07:00 EST: waits for 09:00
    # 16:00 PST Monday is Tuesday 00:00Z: the local day, not the UTC day, decides.
    pacific = office("America/Los_Angeles")
    start = local("America/Los_Angeles", *MON, 16)
    assert add_business_minutes(pacific, start, 120) == local("America/Los_Angeles", 2026, 3, 3, 10)
    assert business_minutes(pacific, start, local("America/Los_Angeles", 2026, 3, 3, 10)) == 120


def test_holidays_are_local_dates():
    # 1 Jan in Tokyo starts at 15:00Z on 31 Dec.
    cal = BusinessCalendar.from_hours(
        "Asia/Tokyo", [(d, "00:00", "24:00") for d in WEEKDAYS], [date(2027, 1, 1)]
    )
    assert business_minutes(cal, utc(2026, 12, 31, 14), utc(2026, 12, 31, 16)) == 60


def test_spring_forward_day_is_an_hour_shorter():
    berlin = "Europe/Berlin"  # clocks go 02:00 -> 03:00 on Sunday 29 March 2026
    every_day = BusinessCalendar.from_hours(berlin, [(d, "00:00", "24:00") for d in ("SAT", "SUN", "MON")])
    day = local(berlin, 2026, 3, 29, 0)
    next_day = local(berlin, 2026, 3, 30, 0)
    assert business_minutes(every_day, day, next_day) == 23 * 60
    # Office hours straddling the change keep their local times.
    cal = office(berlin, days=("FRI", "MON"))
    friday_4pm = local(berlin, 2026, 3, 27, 16)  # 15:00Z (CET)
    monday_10am = local(berlin, 2026, 3, 30, 10)  # 08:00Z (CEST)
    assert add_business_minutes(cal, friday_4pm, 120) == monday_10am
    assert monday_10am.astimezone(UTC) == utc(2026, 3, 30, 8)
    assert business_minutes(cal, friday_4pm, monday_10am) == 120


def test_fall_back_day_is_an_hour_longer():
    berlin = "Europe/Berlin"  # clocks go 03:00 -> 02:00 on Sunday 25 October 2026
    cal = BusinessCalendar.from_hours(berlin, [("SUN", "00:00", "24:00")])
    assert business_minutes(cal, local(berlin, 2026, 10, 25, 0), local(berlin, 2026, 10, 26, 0)) == 25 * 60
    assert add_business_minutes(cal, local(berlin, 2026, 10, 25, 0), 24 * 60) == local(
        berlin, 2026, 10, 25, 23
    )


def test_hours_inside_the_skipped_hour_have_no_length():
    ny = "America/New_York"  # 02:00 -> 03:00 on Sunday 8 March 2026
    cal = BusinessCalendar.from_hours(ny, [("SUN", "02:00", "03:00"), ("MON", "09:00", "10:00")])
    assert business_minutes(cal, local(ny, 2026, 3, 8, 0), local(ny, 2026, 3, 9, 0)) == 0
    assert add_business_minutes(cal, local(ny, 2026, 3, 8, 0), 30) == local(ny, 2026, 3, 9, 9, 30)
    # A week later the hour exists.
    assert business_minutes(cal, local(ny, 2026, 3, 15, 0), local(ny, 2026, 3, 16, 0)) == 60


def test_interval_with_a_dst_change_inside_it():
    ny = "America/New_York"
    cal = BusinessCalendar.from_hours(ny, [("SUN", "01:00", "05:00")])
    # 01:00 EST -> 05:00 EDT is three real hours on 8 March 2026, four a week later.
    assert business_minutes(cal, local(ny, 2026, 3, 8, 0), local(ny, 2026, 3, 9, 0)) == 180
    assert business_minutes(cal, local(ny, 2026, 3, 15, 0), local(ny, 2026, 3, 16, 0)) == 240
    # Autumn (1 Nov 2026): five real hours.
    assert business_minutes(cal, local(ny, 2026, 11, 1, 0), local(ny, 2026, 11, 2, 0)) == 300


def test_empty_and_reversed_ranges():
    cal = office()
    assert business_seconds(cal, utc(*MON, 12), utc(*MON, 12)) == 0
    assert business_seconds(cal, utc(*MON, 12), utc(*MON, 10)) == 0
    assert add_business_seconds(cal, utc(*MON, 20), 0) == utc(*MON, 20)
    assert add_business_seconds(cal, utc(*MON, 20), -5) == utc(*MON, 20)


def test_long_spans():
    cal = office(holidays=[date(2026, 12, 25)])
    # 2026 has 261 week days; Christmas is a Friday.
    assert business_minutes(cal, utc(2026, 1, 1), utc(2027, 1, 1)) == (261 - 1) * 480


def test_round_trip_on_random_instants():
    rng = random.Random(7)
    calendars = [
        office("Europe/Berlin", holidays=[date(2026, 3, 30), date(2026, 10, 26)]),
        BusinessCalendar.from_hours(
            "America/New_York", [(d, "07:30", "11:45") for d in WEEKDAYS] + [("SAT", "22:00", "24:00")]
        ),
        BusinessCalendar.from_hours("Australia/Lord_Howe", [(d, "00:00", "24:00") for d in ("SUN", "MON")]),
    ]
    base = utc(2026, 1, 1)
    for cal in calendars:
        for _ in range(150):
            start = base + timedelta(seconds=rng.randrange(0, 365 * 86400))
            amount = rng.randrange(1, 60 * 24 * 40) * 60 + rng.random()
            due = add_business_seconds(cal, start, amount)
            assert business_seconds(cal, start, due) == pytest.approx(amount, abs=1e-3)
            assert due >= start
            # Nothing earlier gets there: due is the earliest instant.
            assert business_seconds(cal, start, due - timedelta(seconds=1)) < amount


def test_business_time_is_additive():
    rng = random.Random(11)
    cal = office("America/Sao_Paulo", holidays=[date(2026, 2, 16)])
    for _ in range(100):
        a = utc(2026, 1, 1) + timedelta(minutes=rng.randrange(0, 200 * 1440))
        b = a + timedelta(minutes=rng.randrange(0, 30 * 1440))
        c = b + timedelta(minutes=rng.randrange(0, 30 * 1440))
        assert business_seconds(cal, a, c) == pytest.approx(
            business_seconds(cal, a, b) + business_seconds(cal, b, c)
        )


@pytest.mark.parametrize(
    ("value", "minute"), [("00:00", 0), ("09:30", 570), ("23:59", 1439), ("24:00", 1440)]
)
def test_parse_hhmm(value, minute):
    assert parse_hhmm(value) == minute
    assert format_hhmm(minute) == value


@pytest.mark.parametrize("value", ["24:01", "25:00", "12:60", "9:00", "0900", "ab:cd", "", "12:5"])
def test_parse_hhmm_refuses_impossible_times(value):
    with pytest.raises(ValueError):
        parse_hhmm(value)


def test_impossible_calendars_are_refused():
    with pytest.raises(CalendarError):
        BusinessCalendar.from_hours("UTC", [])
    with pytest.raises(CalendarError):
        BusinessCalendar.from_hours("UTC", [("MON", "10:00", "09:00")])
    with pytest.raises(CalendarError):
        BusinessCalendar.from_hours("UTC", [("MON", "09:00", "12:00"), ("MON", "11:00", "13:00")])


def test_a_calendar_closed_for_good_gives_up(monkeypatch):
    import ticket_svc.service.businesstime as bt

    monkeypatch.setattr(bt, "MAX_SEARCH_DAYS", 30)
    cal = BusinessCalendar.from_hours(
        "UTC", [("MON", "09:00", "10:00")], [date(2026, 3, 2) + timedelta(weeks=w) for w in range(10)]
    )
    with pytest.raises(CalendarError):
        add_business_minutes(cal, utc(2026, 3, 1), 30)


def test_naive_instants_are_refused():
    with pytest.raises(ValueError):
        business_seconds(office(), datetime(2026, 3, 2, 9), utc(2026, 3, 2, 10))
