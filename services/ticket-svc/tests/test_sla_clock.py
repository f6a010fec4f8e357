"""The SLA clock: elapsed business time with pauses, due times that freeze and move on."""

from datetime import UTC, datetime, timedelta

from ticket_svc.service import sla
from ticket_svc.service.businesstime import BusinessCalendar, business_minutes

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI")
CAL = BusinessCalendar.from_hours("UTC", [(d, "09:00", "17:00") for d in WEEKDAYS])


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


MON_9 = utc(2026, 3, 2, 9)


def test_a_running_clock_counts_business_time():
    clock = sla.Clock(MON_9)
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 2, 10, 30)) == 90
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 3, 10)) == 480 + 60
    assert sla.elapsed_minutes(CAL, clock, MON_9 - timedelta(hours=1)) == 0


def test_pauses_are_left_out():
    clock = sla.stop(sla.Clock(MON_9), utc(2026, 3, 2, 10))  # PENDING after an hour
    # While stopped, the reading stays.
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 2, 16)) == 60
    clock = sla.restart(CAL, clock, utc(2026, 3, 3, 11))  # customer answered next day 11:00
    assert clock.running
    assert clock.stopped_seconds == (7 * 60 + 2 * 60) * 60  # Mon 10-17 and Tue 9-11
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 3, 12)) == 120
    # A second pause adds up.
    clock = sla.restart(CAL, sla.stop(clock, utc(2026, 3, 3, 13)), utc(2026, 3, 3, 14))
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 3, 15)) == 60 + 60 + 60 + 60


def test_a_pause_outside_business_hours_costs_nothing():
    clock = sla.stop(sla.Clock(MON_9), utc(2026, 3, 6, 17, 30))  # Friday evening
    clock = sla.restart(CAL, clock, utc(2026, 3, 9, 8))  # Monday before opening
    assert clock.stopped_seconds == 0
    assert sla.elapsed_minutes(CAL, clock, utc(2026, 3, 9, 9)) == 5 * 480


def test_stop_and_restart_are_idempotent():
    clock = sla.Clock(MON_9)
    assert sla.restart(CAL, clock, utc(2026, 3, 2, 12)) is clock
    stopped = sla.stop(clock, utc(2026, 3, 2, 10))
    assert sla.stop(stopped, utc(2026, 3, 2, 11)) is stopped


def test_due_time_from_a_fresh_clock():
    assert sla.due_at(CAL, sla.Clock(MON_9), 240, MON_9) == utc(2026, 3, 2, 13)
    friday_4pm = utc(2026, 3, 6, 16)
    assert sla.due_at(CAL, sla.Clock(friday_4pm), 120, friday_4pm) == utc(2026, 3, 9, 10)


def test_due_time_later_in_the_life_of_a_ticket():
    # Priority raised at 11:00: a 4h target has 2h left.
    assert sla.due_at(CAL, sla.Clock(MON_9), 240, utc(2026, 3, 2, 11)) == utc(2026, 3, 2, 13)
    # Already past: the moment it was reached.
    assert sla.due_at(CAL, sla.Clock(MON_9), 60, utc(2026, 3, 2, 15)) == utc(2026, 3, 2, 10)


def test_a_due_time_freezes_during_a_pause_and_moves_on_by_what_was_left():
    stopped_at = utc(2026, 3, 2, 10)
    clock = sla.stop(sla.Clock(MON_9), stopped_at)
    frozen = sla.due_at(CAL, clock, 240, utc(2026, 3, 2, 15))
    assert frozen == utc(2026, 3, 2, 13)  # as if resumed at the stop: after the stop, never overdue
    moved = sla.due_after_restart(CAL, frozen, stopped_at, utc(2026, 3, 3, 16))
    assert moved == utc(2026, 3, 4, 11)  # 3h left: Tue 16-17, Wed 9-11
    restarted = sla.restart(CAL, clock, utc(2026, 3, 3, 16))
    assert sla.due_at(CAL, restarted, 240, utc(2026, 3, 3, 16)) == moved
    assert sla.elapsed_minutes(CAL, restarted, moved) == 240


def test_a_due_time_passed_before_the_pause_stays():
    due = utc(2026, 3, 2, 10)
    assert sla.due_after_restart(CAL, due, utc(2026, 3, 2, 11), utc(2026, 3, 3, 9)) == due
    assert sla.due_after_restart(CAL, None, utc(2026, 3, 2, 11), utc(2026, 3, 3, 9)) is None


def test_stop_statuses():
    pause = sla.DEFAULT_PAUSE_STATUSES
    assert sla.should_stop("PENDING", pause)
    assert sla.should_stop("RESOLVED", pause) and sla.should_stop("CLOSED", pause)
    assert not sla.should_stop("OPEN", pause) and not sla.should_stop("ESCALATED", pause)
    assert sla.should_stop("ESCALATED", frozenset({"ESCALATED"}))


def test_elapsed_matches_plain_business_time_without_pauses():
    end = utc(2026, 3, 20, 12, 34)
    assert sla.elapsed_seconds(CAL, sla.Clock(MON_9), end) == business_minutes(CAL, MON_9, end) * 60
