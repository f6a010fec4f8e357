"""The inbox: a handler's effects and the record that it saw the event commit together, so a
redelivered event changes nothing."""

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from pydantic import ValidationError
from sqlalchemy import Result, delete
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


# A consumer's cheap look before its handler's transaction: whether the event can have any effect
# (False: none but the inbox's record of it), or the one row it changes (an Upsert, as UpsertHandler's).
EventWanted = Callable[[CloudEvent], Awaitable["bool | Upsert"]]

# What an event does in a consumer: nothing but its claim (None), one row's upsert, or a handler's work.
Effect = Optional["Upsert | EventHandler"]


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


@functools.cache
def _claim_many_statement(dialect: str) -> Any:
    return _claim_statement(dialect).returning(inbox.c.event_id)


async def claim_many(session: AsyncSession, consumer: str, events: Sequence[CloudEvent]) -> set[uuid.UUID]:
    """`claim` for several events in one statement (executemany: compiled once, whatever the
    count); returns the ids of those not claimed before."""
    rows = [_claim_row(consumer, event) for event in events]
    return set((await session.execute(_claim_many_statement(dialect_name(session)), rows)).scalars())


async def claim_alone(db: Database, consumer: str, event: CloudEvent) -> bool:
    """`claim` as a statement of its own, for an event that has nothing else to do here."""
    async with db.single_statements() as conn:
        result = await conn.execute(_claim_statement(dialect_name(conn)), _claim_row(consumer, event))
    return affected(result) == 1


# --- one-row handlers --------------------------------------------------------------------------------
#
# Most events a context consumes change one row of its read model (a customer's name, owner, status)
# under the row's own version rule. Run as a transaction, such an event costs a session, BEGIN, the
# claim, the upsert and COMMIT: four round trips, for every consumer of every event. On Postgres the
# claim and the upsert go together instead, as one statement on its own: the claim is a
# data-modifying CTE and the row is inserted only if the claim was, so the effect and the record that
# it happened still commit together, and a redelivery still changes nothing. (On SQLite, where a
# statement costs no round trip, the two run in a transaction without an ORM session.)

# Adds the ON CONFLICT clause to an INSERT of these columns (the module-level function of a table:
# it is part of the key the statements are built and kept under).
Conflict = Callable[[postgresql.Insert | sqlite.Insert, tuple[str, ...]], sa.Insert]


@dataclass(frozen=True)
class Upsert:
    """One row's INSERT ... ON CONFLICT: `row` maps column names to values."""

    table: sa.Table
    row: dict[str, Any]
    conflict: Conflict

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.row)

    async def execute(self, session: AsyncSession) -> Result[Any]:
        """In a transaction of the caller's; the result holds what the statement returns, if anything
        (a `conflict` may add RETURNING)."""
        statement = _plain_upsert(dialect_name(session), self.table, self.columns, self.conflict)
        result: Result[Any] = await session.execute(statement, self.row)
        return result


class UpsertHandler:
    """A handler whose effect on an event is `await upsert(event)`, one row's upsert; for an event
    where that is None, `otherwise` handles it as any handler does (in the inbox transaction).
    `upsert` may read (outside any transaction) to decide, but not write.

    Called as a handler (in a transaction: a batch, a service's own handler calling it) it executes
    the upsert in that transaction; the dispatcher runs it with the claim (claim_and_upsert)."""

    def __init__(
        self, upsert: Callable[[CloudEvent], Awaitable[Upsert | None]], otherwise: EventHandler | None = None
    ):
        self.upsert = upsert
        self.otherwise = otherwise

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        upsert = await self.upsert(event)
        if upsert is None:
            if self.otherwise is not None:
                await self.otherwise(session, event)
            return
        await upsert.execute(session)


@functools.lru_cache(maxsize=256)
def _plain_upsert(dialect: str, table: sa.Table, columns: tuple[str, ...], conflict: Conflict) -> Any:
    # Built once per shape: building `excluded` (an alias of the table, a proxy per column) costs more
    # than the statement's execution.
    return conflict(insert_for(dialect, table), columns)


@functools.lru_cache(maxsize=256)
def _claimed_upsert(table: sa.Table, columns: tuple[str, ...], conflict: Conflict) -> Any:
    """WITH claimed AS (INSERT INTO event_inbox ... ON CONFLICT DO NOTHING RETURNING event_id),
    applied AS (INSERT INTO table (columns) SELECT <the row> WHERE EXISTS (SELECT FROM claimed)
    ON CONFLICT ...) SELECT count(*) FROM claimed: 1 when the event was claimed (and applied), 0
    when the inbox already had it. Postgres runs every data-modifying CTE to completion whether or
    not the final SELECT reads it."""
    claimed = (
        postgresql.insert(inbox)
        .values(
            consumer=sa.bindparam("inbox_consumer"),
            event_id=sa.bindparam("inbox_event_id"),
            event_type=sa.bindparam("inbox_event_type"),
            processed_at=sa.bindparam("inbox_processed_at"),
        )
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
        .returning(inbox.c.event_id)
        .cte("claimed")
    )
    # Typed parameters (asyncpg renders `$1::UUID`): in INSERT ... SELECT they take no type from the
    # target columns. No CAST to the column's type: a cast to VARCHAR(n) would cut a value that the
    # plain upsert refuses.
    row = sa.select(*(sa.bindparam(c, type_=table.c[c].type) for c in columns))
    row = row.where(sa.exists(sa.select(claimed.c.event_id)))
    applied = conflict(postgresql.insert(table).from_select(list(columns), row), columns).cte("applied")
    return sa.select(sa.select(sa.func.count()).select_from(claimed).scalar_subquery()).add_cte(applied)


async def claim_and_upsert(db: Database, consumer: str, event: CloudEvent, upsert: Upsert) -> bool:
    """`claim` and the upsert together; False, with nothing changed, when the inbox already had the
    event. Postgres: one statement on its own (no transaction around it). SQLite has no
    data-modifying CTE, and no round trips to save: the two statements in one transaction, on a
    plain connection rather than an ORM session."""
    if db.is_sqlite:
        async with db.single_statements() as conn:
            if affected(await conn.execute(_claim_statement("sqlite"), _claim_row(consumer, event))) != 1:
                return False
            await conn.execute(
                _plain_upsert("sqlite", upsert.table, upsert.columns, upsert.conflict), upsert.row
            )
        return True
    statement = _claimed_upsert(upsert.table, upsert.columns, upsert.conflict)
    params = {f"inbox_{k}": v for k, v in _claim_row(consumer, event).items()}
    async with db.single_statements() as conn:
        claimed: int = (await conn.execute(statement, {**params, **upsert.row})).scalar_one()
    return claimed == 1


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
    exactly as if the handler had run and done nothing; when it answers with one row's Upsert, that
    is all the event does (as an UpsertHandler's).

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
                effect = await self._effect(event, handler)
                if effect is None:
                    applied = await claim_alone(self.db, consumer, event)
                elif isinstance(effect, Upsert):
                    applied = await claim_and_upsert(self.db, consumer, event, effect)
                else:
                    async with self.db.transaction() as session:
                        applied = await self._apply(session, event, effect)
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
        todo: list[tuple[CloudEvent, Effect]] = []
        for event in events:
            handler = self.handlers.get(event.routing_key)
            if handler is None:
                outcomes.append(self._ignored(event))
                continue
            check_event(event)
            outcomes.append("")
            todo.append((event, await self._effect(event, handler)))
        if todo:
            async with self.db.transaction() as session:
                applied = await self._apply_together(session, todo)
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

    async def _apply_together(
        self, session: AsyncSession, todo: list[tuple[CloudEvent, Effect]]
    ) -> list[bool]:
        """A batch's effects in order, in the caller's transaction, each exactly as alone: one
        statement claims every event, and consecutive one-row upserts of the same shape run as one
        executemany (SQLite runs its rows in order, so a row upserted twice ends as it would have).
        A statement through the ORM costs more than the row it writes: per event, a claim and an
        upsert were most of a consumer's time. Returns whether each event was applied."""
        claimed = await claim_many(session, self.consumer, [event for event, _ in todo])
        applied: list[bool] = []
        upserts: list[tuple[CloudEvent, Upsert]] = []
        for event, effect in todo:
            # The first of an event delivered twice in one batch is applied, the second is not.
            fresh = event.id in claimed
            claimed.discard(event.id)
            applied.append(fresh)
            if not fresh or effect is None:
                continue
            if isinstance(effect, Upsert):
                if upserts and _shape(upserts[0][1]) != _shape(effect):
                    await self._upsert_all(session, upserts)
                    upserts = []
                upserts.append((event, effect))
                continue
            await self._upsert_all(session, upserts)
            upserts = []
            token = set_request_id(event.correlationid)
            try:
                with consumer_span(self.consumer, event.type, str(event.id), event.traceparent):
                    await self._run(session, event, effect)
                    # The next event's handler reads afresh, as in a session of its own.
                    await session.flush()
                    session.expunge_all()
            finally:
                reset_request_id(token)
        await self._upsert_all(session, upserts)
        return applied

    async def _upsert_all(self, session: AsyncSession, upserts: list[tuple[CloudEvent, Upsert]]) -> None:
        """Same-shape upserts as one statement executed for each row, in order; each event's span
        covers it."""
        if not upserts:
            return
        with contextlib.ExitStack() as spans:
            for event, _ in upserts:
                spans.enter_context(
                    consumer_span(self.consumer, event.type, str(event.id), event.traceparent)
                )
            statement = _plain_upsert(dialect_name(session), *_shape(upserts[0][1]))
            await session.execute(statement, [upsert.row for _, upsert in upserts])

    def _ignored(self, event: CloudEvent) -> str:
        IGNORED.labels(self.consumer).inc()
        log.info("%s: no handler for %s %s; ignored", self.consumer, event.type, event.id)
        return "ignored"

    async def _effect(self, event: CloudEvent, handler: EventHandler) -> Effect:
        """What the event does here, from the cheap looks before any transaction: `wanted`'s, then
        an UpsertHandler's. One row's upsert runs with the claim, without a session
        (claim_and_upsert)."""
        try:
            look = True if self.wanted is None else await self.wanted(event)
            if look is False:
                return None
            if isinstance(look, Upsert):
                return look
            if isinstance(handler, UpsertHandler):
                upsert = await handler.upsert(event)
                return upsert if upsert is not None else handler.otherwise
            return handler
        except ValidationError as exc:
            raise PermanentEventError(f"{event.type} {event.id} breaks its contract: {exc}") from exc

    async def _apply(self, session: AsyncSession, event: CloudEvent, effect: "Upsert | EventHandler") -> bool:
        applied = await claim(session, self.consumer, event)
        if applied:
            await self._run(session, event, effect)
        return applied

    async def _run(self, session: AsyncSession, event: CloudEvent, effect: "Upsert | EventHandler") -> None:
        try:
            if isinstance(effect, Upsert):
                await effect.execute(session)
            else:
                await effect(session, event)
        except ValidationError as exc:
            raise PermanentEventError(f"{event.type} {event.id} breaks its contract: {exc}") from exc


def _shape(upsert: Upsert) -> tuple[sa.Table, tuple[str, ...], Conflict]:
    return upsert.table, upsert.columns, upsert.conflict


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
