"""The inbox: a handler's effects and the record that it saw the event commit together, so a
redelivered event changes nothing."""

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import consistency
from crm_common.db import Database, affected, dialect_name, insert_for
from crm_common.events.acceptance import check_event
from crm_common.events.dead_letters import PermanentEventError
from crm_common.events.envelope import CloudEvent
from crm_common.events.tables import inbox
from crm_common.observability import reset_request_id, set_request_id
from crm_common.tracing import consumer_span

log = logging.getLogger("crm.events.inbox")
EventHandler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]

HANDLED = Histogram(
    "crm_event_handler_seconds",
    "Time to handle one event (its transaction included), by outcome",
    ["consumer", "type", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IGNORED = Counter(
    "crm_events_ignored_total",
    "Events delivered to a consumer that has no handler for their type",
    ["consumer"],
)
PURGED = Counter(
    "crm_inbox_purged_total", "Processed-event inbox rows removed by the retention", ["consumer"]
)
LAG = Histogram(
    "crm_event_lag_seconds",
    "From the event's time (its producer's commit) to its effects committed here",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)


# A consumer's cheap look before its handler's transaction: whether the event can have any effect.
EventWanted = Callable[[CloudEvent], Awaitable[bool]]


@functools.cache
def _claim_statement(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """Built once per dialect (every event of every consumer runs it); the row is bound at execution."""
    return insert_for(dialect, inbox).on_conflict_do_nothing(index_elements=["consumer", "event_id"])


def _claim_row(consumer: str, event: CloudEvent) -> dict[str, Any]:
    return {
        "consumer": consumer,
        "event_id": event.id,
        "event_type": event.type,
        "processed_at": datetime.now(UTC),
    }


async def claim(session: AsyncSession, consumer: str, event: CloudEvent) -> bool:
    """Record the event as processed by `consumer`; False if it already was."""
    result = await session.execute(_claim_statement(dialect_name(session)), _claim_row(consumer, event))
    return affected(result) == 1


async def claim_alone(db: Database, consumer: str, event: CloudEvent) -> bool:
    """`claim` as a statement of its own, for an event that has nothing else to do here."""
    async with db.single_statements() as conn:
        result = await conn.execute(_claim_statement(dialect_name(conn)), _claim_row(consumer, event))
    return affected(result) == 1


def idempotent_dispatcher(
    db: Database, consumer: str, handlers: Mapping[str, EventHandler], wanted: EventWanted | None = None
) -> "IdempotentDispatcher":
    """One bus handler for a service: routes by routing key, exactly-once effects via the inbox.

    An exception rolls everything back (inbox row included) and propagates, so the bus retries; a
    payload that fails its contract's validation will fail the same way every time, so it propagates
    as a PermanentEventError (dead-lettered at once), as does an event too large or of a schema
    version this code does not read (crm_common.events.acceptance). Returns "applied", "duplicate"
    (the inbox had it: nothing done) or "ignored" (no handler for it: acknowledged, nothing done).

    `wanted`, when given, is asked first: an event it says can have no effect here is only recorded
    in the inbox (one statement, no handler transaction), so redelivery and consistency tokens see it
    exactly as if the handler had run and done nothing.

    A bus with several events waiting may hand them over together (`apply_batch`): one transaction
    applies them all, each exactly as alone; if any of them fails, none is kept, and the bus delivers
    each of them alone (retries and dead letters per event, as ever)."""
    return IdempotentDispatcher(db, consumer, handlers, wanted)


class IdempotentDispatcher:
    def __init__(
        self,
        db: Database,
        consumer: str,
        handlers: Mapping[str, EventHandler],
        wanted: EventWanted | None = None,
    ):
        self.db = db
        self.consumer = consumer
        self.handlers = handlers
        self.wanted = wanted

    async def __call__(self, event: CloudEvent) -> str:
        consumer = self.consumer
        handler = self.handlers.get(event.routing_key)
        if handler is None:
            return self._ignored(event)
        check_event(event)
        token = set_request_id(event.correlationid)
        started, outcome = time.perf_counter(), "failed"
        try:
            with consumer_span(consumer, event.type, str(event.id), event.traceparent):
                if not await self._is_wanted(event):
                    applied = await claim_alone(self.db, consumer, event)
                else:
                    async with self.db.transaction() as session:
                        applied = await self._apply(session, event, handler)
            # Only here is it committed: requests waiting for it (consistency tokens) may go on.
            consistency.notify_applied(consumer)
            outcome = "applied" if applied else "duplicate"
            if applied:
                LAG.labels(consumer).observe(max(0.0, (datetime.now(UTC) - event.time).total_seconds()))
        finally:
            HANDLED.labels(consumer, event.type, outcome).observe(time.perf_counter() - started)
            reset_request_id(token)
        return outcome

    async def apply_batch(self, events: Sequence[CloudEvent]) -> list[str]:
        """Apply `events` in one transaction (one BEGIN and COMMIT, one writer's turn on SQLite)
        and return each one's outcome as `__call__` would. Raises if any of them failed: then
        nothing of the batch is kept, and the caller delivers each event alone."""
        consumer = self.consumer
        started = time.perf_counter()
        outcomes: list[str] = []
        # What needs no transaction, and the cheap looks before one (as `__call__` takes them).
        todo: list[tuple[CloudEvent, EventHandler | None]] = []
        for event in events:
            handler = self.handlers.get(event.routing_key)
            if handler is None:
                outcomes.append(self._ignored(event))
                continue
            check_event(event)
            outcomes.append("")
            todo.append((event, handler if await self._is_wanted(event) else None))
        if todo:
            applied = []
            async with self.db.transaction() as session:
                for event, handler in todo:
                    token = set_request_id(event.correlationid)
                    try:
                        with consumer_span(consumer, event.type, str(event.id), event.traceparent):
                            if handler is None:
                                applied.append(await claim(session, consumer, event))
                            else:
                                applied.append(await self._apply(session, event, handler))
                            # The next event's handler reads afresh, as in a session of its own.
                            await session.flush()
                            session.expunge_all()
                    finally:
                        reset_request_id(token)
            consistency.notify_applied(consumer)
            elapsed, now = time.perf_counter() - started, datetime.now(UTC)
            results = iter(applied)
            for i, outcome in enumerate(outcomes):
                if outcome:
                    continue
                event = events[i]
                outcomes[i] = "applied" if next(results) else "duplicate"
                HANDLED.labels(consumer, event.type, outcomes[i]).observe(elapsed)
                if outcomes[i] == "applied":
                    LAG.labels(consumer).observe(max(0.0, (now - event.time).total_seconds()))
        return outcomes

    def _ignored(self, event: CloudEvent) -> str:
        IGNORED.labels(self.consumer).inc()
        log.info("%s: no handler for %s %s; ignored", self.consumer, event.type, event.id)
        return "ignored"

    async def _is_wanted(self, event: CloudEvent) -> bool:
        if self.wanted is None:
            return True
        try:
            return await self.wanted(event)
        except ValidationError as exc:
            raise PermanentEventError(f"{event.type} {event.id} breaks its contract: {exc}") from exc

    async def _apply(self, session: AsyncSession, event: CloudEvent, handler: EventHandler) -> bool:
        applied = await claim(session, self.consumer, event)
        if applied:
            try:
                await handler(session, event)
            except ValidationError as exc:
                raise PermanentEventError(f"{event.type} {event.id} breaks its contract: {exc}") from exc
        return applied


# --- retention --------------------------------------------------------------------------------------
#
# An inbox row only has to outlive every redelivery of its event. RabbitMQ redelivers an unacknowledged
# message when its consumer's connection drops (seconds to the length of an outage) and keeps a queued
# one while the consumer is down; the outbox relay sends a row again only while it is PENDING; an
# operator can replay PUBLISHED outbox rows for as long as they are kept (CRM_OUTBOX_RETENTION_HOURS,
# 7 days) and dead letters at any time (those were never applied, so they have no inbox row to lose).
# The default, 14 days (CRM_INBOX_RETENTION_DAYS), is twice the outbox's retention: a row is gone
# only long after the last copy of its event that anyone could send again.


async def purge_processed(db: Database, retention: timedelta, *, consumer: str | None = None) -> int:
    """Delete inbox rows processed more than `retention` ago; returns how many."""
    cutoff = datetime.now(UTC) - retention
    query = delete(inbox).where(inbox.c.processed_at < cutoff)
    if consumer is not None:
        query = query.where(inbox.c.consumer == consumer)
    async with db.transaction() as session:
        removed = affected(await session.execute(query))
    if removed:
        PURGED.labels(consumer or "all").inc(removed)
        log.info("inbox retention: removed %d rows processed before %s", removed, cutoff.isoformat())
    return removed


async def keep_retention(db: Database, consumer: str, retention: timedelta, every: float) -> None:
    """A service's background task: purge now, then every `every` seconds. A failed purge (the
    database away) is logged and tried again at the next round."""
    while True:
        try:
            await purge_processed(db, retention, consumer=consumer)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s: inbox purge failed; trying again in %.0f s", consumer, every, exc_info=True)
        await asyncio.sleep(every)
