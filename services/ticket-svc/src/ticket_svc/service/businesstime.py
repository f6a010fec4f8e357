"""Business-time arithmetic: pure functions over a weekly calendar in one time zone.

A calendar has, for each week day, zero or more local opening intervals (minutes from local
midnight, end up to 1440 = 24:00), and a set of local holiday dates on which it is closed. Every
computation converts each local day's intervals to UTC instants with `zoneinfo`, so a day with a
DST change simply has a shorter or longer business interval, and all arithmetic on instants is
exact.

Local times that do not exist (the hour skipped when clocks go forward) are read with the offset
in force before the change (zoneinfo's `fold=0`), e.g. 02:30 on a spring-forward night in
Europe/Berlin is 03:30 CEST; ambiguous times (the hour repeated when clocks go back) are the first
occurrence.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
MINUTES_PER_DAY = 24 * 60
# add_business_seconds gives up after this many local days without enough business time.
MAX_SEARCH_DAYS = 366 * 10


class CalendarError(ValueError):
    """A calendar that cannot be used: no business time at all, or time that never comes."""


Interval = tuple[int, int]  # (start minute, end minute) of a local day, 0 <= start < end <= 1440


@dataclass(frozen=True)
class BusinessCalendar:
    time_zone: str = "UTC"
    # Seven entries, Monday first; each a sorted tuple of non-overlapping intervals.
    week: tuple[tuple[Interval, ...], ...] = ((),) * 7
    holidays: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise CalendarError("a week has seven days")
        for day in self.week:
            for start, end in day:
                if not 0 <= start < end <= MINUTES_PER_DAY:
                    raise CalendarError(f"impossible interval {start}-{end}")
            for (_, end_a), (start_b, _) in pairwise(day):
                if start_b < end_a:
                    raise CalendarError("overlapping intervals")
        if not any(self.week):
            raise CalendarError("a calendar needs some business hours")

    @property
    def tz(self) -> ZoneInfo:
        return _zone(self.time_zone)

    @classmethod
    def always_open(cls, time_zone: str = "UTC") -> "BusinessCalendar":
        """24x7: business time is wall-clock time."""
        return cls(time_zone=time_zone, week=(((0, MINUTES_PER_DAY),),) * 7)

    @classmethod
    def from_hours(
        cls,
        time_zone: str,
        hours: Iterable[tuple[str, str, str]],
        holidays: Iterable[date] = (),
    ) -> "BusinessCalendar":
        """From `(day, "HH:MM", "HH:MM")` triples (day MON..SUN; end may be "24:00")."""
        week: list[list[Interval]] = [[] for _ in DAYS]
        for day, start, end in hours:
            week[DAYS.index(day)].append((parse_hhmm(start), parse_hhmm(end)))
        return cls(
            time_zone=time_zone,
            week=tuple(tuple(sorted(d)) for d in week),
            holidays=frozenset(holidays),
        )

    @property
    def is_always_open(self) -> bool:
        return not self.holidays and all(d == ((0, MINUTES_PER_DAY),) for d in self.week)

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The business intervals of one local date, as UTC instants (empty on holidays)."""
        if day in self.holidays:
            return []
        return _day_intervals(self.time_zone, self.week[day.weekday()], day)


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_instant(tz: ZoneInfo, day: date, minute: int) -> datetime:
    if minute == MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), 0
    local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)
    return local.astimezone(UTC)


@lru_cache(maxsize=8192)
def _day_intervals(time_zone: str, intervals: tuple[Interval, ...], day: date) -> list:
    tz = _zone(time_zone)
    out = []
    for start, end in intervals:
        lo, hi = _local_instant(tz, day, start), _local_instant(tz, day, end)
        if hi > lo:  # an interval wholly inside a skipped hour has no length
            out.append((lo, hi))
    return out


def parse_hhmm(value: str) -> int:
    """ "09:30" -> 570; "24:00" is the end of the day (1440). Anything else is a ValueError."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{value!r} is not HH:MM")
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return MINUTES_PER_DAY
    if h > 23 or m > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return h * 60 + m


def format_hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: business time needs aware instants")
    return value.astimezone(UTC)


def _days(calendar: BusinessCalendar, start: datetime) -> Iterator[date]:
    """Local dates from the one holding `start` onwards (the day before too: with a negative UTC
    offset an instant's local date can be earlier than the day an interval is filed under)."""
    day = start.astimezone(calendar.tz).date() - timedelta(days=1)
    while True:
        yield day
        day += timedelta(days=1)


def business_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Business seconds in [start, end); 0 when end <= start."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return 0.0
    if calendar.is_always_open:
        return (end - start).total_seconds()
    last_day = end.astimezone(calendar.tz).date() + timedelta(days=1)
    total = 0.0
    for day in _days(calendar, start):
        if day > last_day:
            break
        for lo, hi in calendar.intervals_on(day):
            lo, hi = max(lo, start), min(hi, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
    return total


def business_minutes(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    return business_seconds(calendar, start, end) / 60


def add_business_seconds(calendar: BusinessCalendar, start: datetime, seconds: float) -> datetime:
    """The earliest instant at which `seconds` of business time have passed since `start`.

    A target that ends exactly at closing time is due at closing time, not at the next opening.
    `seconds <= 0` gives `start` itself."""
    start = _aware(start)
    if seconds <= 0:
        return start
    if calendar.is_always_open:
        return start + timedelta(seconds=seconds)
    remaining = seconds
    for n, day in enumerate(_days(calendar, start)):
        if n > MAX_SEARCH_DAYS:
            raise CalendarError("the calendar has no business time in the next ten years")
        for lo, hi in calendar.intervals_on(day):
            if hi <= start:
                continue
            lo = max(lo, start)
            available = (hi - lo).total_seconds()
            if available >= remaining:
                return lo + timedelta(seconds=remaining)
            remaining -= available
    raise AssertionError("unreachable")  # pragma: no cover


def add_business_minutes(calendar: BusinessCalendar, start: datetime, minutes: float) -> datetime:
    return add_business_seconds(calendar, start, minutes * 60)


def is_business_time(calendar: BusinessCalendar, at: datetime) -> bool:
    at = _aware(at)
    local_day = at.astimezone(calendar.tz).date()
    for day in (local_day - timedelta(days=1), local_day):
        for lo, hi in calendar.intervals_on(day):
            if lo <= at < hi:
                return True
    return False
