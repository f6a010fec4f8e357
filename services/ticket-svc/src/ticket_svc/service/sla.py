"""The SLA clock of a ticket: pure functions over business time.

The clock starts when the ticket is created and runs in the business time of the ticket's SLA
calendar. It is stopped while the ticket is in a pause status of its policy (PENDING by default)
and while it is RESOLVED or CLOSED; the business time it stood still is kept in `stopped_seconds`
(closed stops) plus the stop in progress since `stopped_at`.

    elapsed(t) = business(created, t) - stopped_seconds - business(stopped_at, t) if stopped

Due times are where `elapsed` reaches a target. While the clock is stopped, a due time that was
not yet reached is frozen (it lies after `stopped_at`, so nothing treats it as breached) and is
moved on by the business time that was left when the clock restarts; a due time already passed
before the stop stays where it was: a breach is a breach.
"""

from dataclasses import dataclass
from datetime import datetime

from ticket_svc.service.businesstime import BusinessCalendar, add_business_seconds, business_seconds

# Statuses in which the clock never runs, whatever the policy says.
ALWAYS_STOPPED = frozenset({"RESOLVED", "CLOSED"})
DEFAULT_PAUSE_STATUSES = frozenset({"PENDING"})


@dataclass(frozen=True)
class Clock:
    started_at: datetime
    stopped_seconds: float = 0.0
    stopped_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.stopped_at is None


def elapsed_seconds(calendar: BusinessCalendar, clock: Clock, at: datetime) -> float:
    """Business seconds the clock has run from its start up to `at`."""
    total = business_seconds(calendar, clock.started_at, at) - clock.stopped_seconds
    if clock.stopped_at is not None and at > clock.stopped_at:
        total -= business_seconds(calendar, clock.stopped_at, at)
    return max(0.0, total)


def elapsed_minutes(calendar: BusinessCalendar, clock: Clock, at: datetime) -> int:
    """Whole business minutes (rounded to the nearest), as responseTime / resolutionTime report."""
    return round(elapsed_seconds(calendar, clock, at) / 60)


def stop(clock: Clock, at: datetime) -> Clock:
    if clock.stopped_at is not None:
        return clock
    return Clock(clock.started_at, clock.stopped_seconds, at)


def restart(calendar: BusinessCalendar, clock: Clock, at: datetime) -> Clock:
    if clock.stopped_at is None:
        return clock
    paused = business_seconds(calendar, clock.stopped_at, at)
    return Clock(clock.started_at, clock.stopped_seconds + paused, None)


def due_at(calendar: BusinessCalendar, clock: Clock, target_minutes: int, now: datetime) -> datetime:
    """When the clock reaches `target_minutes`, as known at `now`.

    Not reached yet: from the clock's current reading, the remaining budget added in business time
    from now (or, while stopped, from the stop: the due time then lies after the stop and moves on
    when the clock restarts). Already reached: a time in the past at which it was reached (exact
    unless a stop happened after the breach)."""
    target = target_minutes * 60
    reading_at = now if clock.stopped_at is None else min(now, clock.stopped_at)
    used = elapsed_seconds(calendar, clock, reading_at)
    if used < target:
        return add_business_seconds(calendar, reading_at, target - used)
    return add_business_seconds(calendar, clock.started_at, target + clock.stopped_seconds)


def should_stop(status: str, pause_statuses: frozenset[str]) -> bool:
    return status in ALWAYS_STOPPED or status in pause_statuses


def due_after_restart(
    calendar: BusinessCalendar, due: datetime | None, stopped_at: datetime, restarted_at: datetime
) -> datetime | None:
    """A due time frozen during a stop, moved on when the clock restarts: the business time that
    was left at the stop is counted from the restart. A due time passed before the stop stays."""
    if due is None or due <= stopped_at:
        return due
    left = business_seconds(calendar, stopped_at, due)
    return add_business_seconds(calendar, restarted_at, left)
