"""What an operator does with one service's dead letters and outbox, on that service's database.

Used by the `crm events dlq|outbox ...` commands (crm_gateway.dlq, crm_gateway.outbox), which open
each service's database from the settings, and by the admin endpoints every service serves
(crm_common.events.admin_api), which use the service's own. Both replay through the same inbox as
the consumer, so a replayed event that was already applied changes nothing.
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa

from crm_common.db import Database, affected
from crm_common.events import dead_letters as dl
from crm_common.events.envelope import TYPE_PREFIX, CloudEvent
from crm_common.events.tables import inbox, outbox
from crm_common.sql_types import AnyRow, AnySelect

# The service's inbox dispatcher (crm_common.events.inbox.idempotent_dispatcher): what it did.
Dispatch = Callable[[CloudEvent], Awaitable[str]]
# The outbox statements the filters apply to: reads (rows, a count) and the replay's update.
Statement = TypeVar("Statement", AnySelect, sa.Update)

# --- dead letters -----------------------------------------------------------------------------------


async def dead_letter_rows(
    db: Database,
    *,
    number: int | None = None,
    event_id: uuid.UUID | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[AnyRow]:
    """Dead letters oldest first, each with `applied`: the consumer's inbox has the event (a later
    delivery applied it after the dead letter was written; a replay only removes it)."""
    table = dl.dead_letters
    applied = (
        sa.exists()
        .where(inbox.c.consumer == table.c.consumer)
        .where(inbox.c.event_id == table.c.event_id)
        .label("applied")
    )
    query = sa.select(table, applied).order_by(table.c.id).offset(offset).limit(limit)
    if number is not None:
        query = query.where(table.c.id == number)
    if event_id is not None:
        query = query.where(table.c.event_id == event_id)
    async with db.transaction(read_only=True) as session:
        return list((await session.execute(query)).all())


async def count_dead_letters(db: Database) -> int:
    async with db.transaction(read_only=True) as session:
        return (await session.execute(sa.select(sa.func.count()).select_from(dl.dead_letters))).scalar_one()


async def replay_dead_letter(db: Database, dispatch: Dispatch, row: AnyRow) -> str:
    """Run one dead letter through `dispatch` (the service's inbox dispatcher). Removes it once that
    succeeded; one that fails again is kept with the new error and one more attempt. Returns
    "applied", "already applied", or a line starting with "failed"."""
    table = dl.dead_letters
    try:
        event = CloudEvent.model_validate(row.payload)
    except ValueError:
        # An unreadable message kept as it came (crm_common.events.dead_letters.record_unreadable).
        return "failed: not an event, nothing to replay (discard it)"
    try:
        result = await dispatch(event)
    except Exception as exc:
        async with db.transaction() as session:
            await session.execute(
                sa.update(table)
                .where(table.c.id == row.id)
                .values(
                    attempts=table.c.attempts + 1, error=dl.describe(exc), last_failed_at=datetime.now(UTC)
                )
            )
        return f"failed again: {type(exc).__name__}: {exc}".splitlines()[0]
    async with db.transaction() as session:
        await session.execute(sa.delete(table).where(table.c.id == row.id))
    return "applied" if result == "applied" else "already applied"


async def discard_dead_letters(
    db: Database, *, number: int | None = None, event_id: uuid.UUID | None = None
) -> int:
    """Delete dead letters without applying them (every one when neither is given)."""
    table = dl.dead_letters
    query = sa.delete(table)
    if number is not None:
        query = query.where(table.c.id == number)
    if event_id is not None:
        query = query.where(table.c.event_id == event_id)
    async with db.transaction() as session:
        return affected(await session.execute(query))


# --- the outbox ------------------------------------------------------------------------------------

OUTBOX_STATES = ("PENDING", "FAILED", "UNROUTED", "PUBLISHED")
# What needs an operator's eye: not yet sent, never sendable as it is, sent to nobody.
UNSENT = ("PENDING", "FAILED", "UNROUTED")


def routing_key(event_type: str) -> str:
    """`crm.customer.created` or `customer.created` -> `customer.created`."""
    return event_type.removeprefix(TYPE_PREFIX)


def _outbox_filter(
    query: Statement,
    *,
    states: Iterable[str] | None = None,
    event_type: str | None = None,
    older_than: timedelta | None = None,
    event_ids: Iterable[uuid.UUID] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Statement:
    if states:
        query = query.where(outbox.c.state.in_(list(states)))
    if event_type:
        query = query.where(outbox.c.routing_key == routing_key(event_type))
    if older_than is not None:
        query = query.where(outbox.c.created_at < datetime.now(UTC) - older_than)
    if event_ids:
        query = query.where(outbox.c.event_id.in_(list(event_ids)))
    if since is not None:
        query = query.where(outbox.c.created_at >= since)
    if until is not None:
        query = query.where(outbox.c.created_at < until)
    return query


async def outbox_rows(
    db: Database,
    *,
    states: Iterable[str] | None = UNSENT,
    event_type: str | None = None,
    older_than: timedelta | None = None,
    event_ids: Iterable[uuid.UUID] | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[AnyRow], int]:
    """Outbox rows oldest first, and how many match in all."""

    def filtered(query: AnySelect) -> AnySelect:
        return _outbox_filter(
            query, states=states, event_type=event_type, older_than=older_than, event_ids=event_ids
        )

    rows_query = filtered(sa.select(outbox)).order_by(outbox.c.position)
    count_query = filtered(sa.select(sa.func.count()).select_from(outbox))
    async with db.transaction(read_only=True) as session:
        total = (await session.execute(count_query)).scalar_one()
        rows = (await session.execute(rows_query.offset(offset).limit(limit))).all()
    return list(rows), total


async def replay_outbox(
    db: Database,
    *,
    event_ids: Iterable[uuid.UUID] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    event_type: str | None = None,
    states: Iterable[str] | None = None,
) -> int:
    """Set the selected rows (whatever their state, unless `states` says) back to PENDING, due now,
    so the service's relay publishes them again at its next poll (or at the next start); returns
    how many. Consumers that applied an event already skip it through their inbox."""
    query = _outbox_filter(
        sa.update(outbox),
        states=states,
        event_type=event_type,
        event_ids=event_ids,
        since=since,
        until=until,
    ).values(state="PENDING", attempts=0, next_attempt_at=None, published_at=None)
    async with db.transaction() as session:
        return affected(await session.execute(query))


def age_seconds(created_at: datetime) -> float:
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - created_at).total_seconds())
