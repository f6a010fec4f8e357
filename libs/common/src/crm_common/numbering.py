"""Yearly record numbers (`CUST-2026-000001`, `INV-…`, `TKT-…`): one algorithm for every service.

A service keeps a counter table with one row per year (`year` primary key, `last_value`). Numbers
are taken by one UPDATE that adds `count` to `last_value`, RETURNING it; only when the year's row is
missing (its first number) does `ensure_year` insert it (ON CONFLICT DO NOTHING) before the UPDATE
runs again. That UPDATE holds the row's lock (Postgres) or runs under the single write lock
(SQLite) until the transaction ends, so:
- concurrent writers get distinct, consecutive numbers, never one twice;
- a transaction that rolls back gives its numbers back (its increment rolls back with it), so the
  numbers committed are gap-free: 1, 2, 3, … within a year, in commit order;
- the price: a year's creates queue on that row from the increment to their commit, so take the
  number as late in the transaction as you can. `insert_numbered` does that for a record created
  with an event (customers, tickets): on Postgres the record is inserted under a placeholder number
  first, then one statement increments the counter, numbers the record and writes its event to the
  outbox, and only the commit follows while the row is held.

A create waits for the row no longer than the service's `numbering_lock_timeout_seconds` (on
Postgres, `lock_timeout` set for the statements that take the row, `bounded_wait`): past it the
statement fails with lock_not_available, its transaction rolls back (nothing written, no number
used) and the client is answered 503 OVERLOADED with Retry-After (crm_common.errors), rather than
every create of the year piling up behind a slow holder, each on a connection of its own. On SQLite
the wait is for the writer's turn, before its transaction begins (crm_common.db, also bounded and
answered 503 OVERLOADED).

The number is `<PREFIX>-<year>-<value>`, the value zero-padded to six digits (more when it grows).
"""

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from crm_common.db import (
    NUMBERING_LOCK_TIMEOUT,
    NUMBERING_LOCK_TIMEOUT_SECONDS,
    dialect_name,
    insert_for,
    insert_new,
)
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events, events_written
from crm_common.events.tables import outbox
from crm_common.models import utcnow

_SET_LOCK_TIMEOUT = sa.text("SELECT set_config('lock_timeout', :timeout, true)")
_RESET_LOCK_TIMEOUT = sa.text("SET LOCAL lock_timeout TO DEFAULT")


def format_number(prefix: str, year: int, value: int) -> str:
    return f"{prefix}-{year}-{value:06d}"


@asynccontextmanager
async def bounded_wait(session: AsyncSession) -> AsyncIterator[None]:
    """Statements inside wait at most the session's numbering lock timeout (crm_common.db.Database's
    `numbering_lock_timeout`) for a row another transaction holds; after them the transaction's
    statements wait as before. Postgres only: on SQLite the writer's turn came before the transaction
    began. A statement that times out ends the transaction (it is rolled back), so nothing follows it."""
    if dialect_name(session) != "postgresql":
        yield
        return
    await session.execute(_SET_LOCK_TIMEOUT, {"timeout": _lock_timeout(session)})
    yield
    await session.execute(_RESET_LOCK_TIMEOUT)


def _lock_timeout(session: AsyncSession) -> str:
    timeout = session.info.get(NUMBERING_LOCK_TIMEOUT, NUMBERING_LOCK_TIMEOUT_SECONDS)
    return f"{max(1, round(timeout * 1000))}ms"


async def ensure_year(session: AsyncSession, counter: Any, year: int) -> None:
    """The counter row of `year` (`last_value` 0) if there is none yet."""
    table = getattr(counter, "__table__", counter)
    await session.execute(
        insert_for(session, table)
        .values(year=year, last_value=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )


async def take(session: AsyncSession, counter: Any, year: int, count: int = 1) -> range:
    """`count` consecutive values of `year` from the counter table (a model or `sa.Table` with
    `year` and `last_value` columns), reserved until the transaction ends."""
    table = getattr(counter, "__table__", counter)
    increment = (
        sa.update(table)
        .where(table.c.year == year)
        .values(last_value=table.c.last_value + count)
        .returning(table.c.last_value)
    )
    async with bounded_wait(session):
        # The increment first: the year's row exists for all but its first number. Ensuring it first
        # cost a round trip per number, and on Postgres that INSERT .. ON CONFLICT waited for the
        # transaction holding the row's lock as the UPDATE then did again, so each create queued twice.
        last = (await session.execute(increment)).scalar_one_or_none()
        if last is None:
            await ensure_year(session, table, year)
            last = (await session.execute(increment)).scalar_one()
    return range(last - count + 1, last + 1)


async def next_numbers(
    session: AsyncSession, counter: Any, prefix: str, year: int, count: int = 1
) -> list[str]:
    return [format_number(prefix, year, value) for value in await take(session, counter, year, count)]


async def next_number(session: AsyncSession, counter: Any, prefix: str, year: int) -> str:
    return (await next_numbers(session, counter, prefix, year))[0]


# Increments the year's counter, numbers the record and writes its event (the number set in its
# payload), in one round trip; no row when the year's counter row does not exist yet. It also bounds
# its own wait for the counter row, as `bounded_wait` does with two statements more: `bound` sets the
# lock timeout before the UPDATE can wait (the UPDATE's condition reads it, so it is evaluated first),
# and the final SELECT, which runs once the row is held, puts back the value from before.
_NUMBER_AND_PUBLISH = """
WITH before AS (
    SELECT current_setting('lock_timeout') AS lock_timeout
), bound AS (
    SELECT set_config('lock_timeout', :lock_timeout, true) AS lock_timeout FROM before
), n AS (
    UPDATE {counter} SET last_value = last_value + 1
    WHERE year = :year AND (SELECT lock_timeout FROM bound) IS NOT NULL
    RETURNING last_value
), r AS (
    UPDATE {table} SET {column} = :prefix || lpad(n.last_value::text, greatest(6, length(n.last_value::text)), '0')
    FROM n WHERE {table}.id = :record_id
    RETURNING {table}.{column} AS number
), o AS (
    INSERT INTO {outbox} (event_id, routing_key, payload, created_at, state, attempts)
    SELECT :event_id, :routing_key, jsonb_set(CAST(:payload AS jsonb), :member, to_jsonb(r.number))::json,
           :created_at, 'PENDING', 0
    FROM r
)
SELECT r.number, set_config('lock_timeout', before.lock_timeout, true) AS lock_timeout FROM r, before
"""

_STATEMENTS: dict[tuple[sa.Table, sa.Table, str], sa.TextClause] = {}


def _number_and_publish(
    session: AsyncSession, counter: sa.Table, table: sa.Table, column: str
) -> sa.TextClause:
    """The statement for one kind of record, built once. Identifiers come from the models (quoted
    by the dialect), values are bound."""
    key = (counter, table, column)
    statement = _STATEMENTS.get(key)
    if statement is None:
        preparer = session.get_bind().dialect.identifier_preparer
        statement = _STATEMENTS[key] = sa.text(
            _NUMBER_AND_PUBLISH.format(
                counter=preparer.format_table(counter),
                table=preparer.format_table(table),
                column=preparer.quote(column),
                outbox=preparer.format_table(outbox),
            )
        ).bindparams(
            sa.bindparam("year", type_=sa.Integer()),
            sa.bindparam("record_id", type_=sa.Uuid()),
            sa.bindparam("event_id", type_=sa.Uuid()),
            sa.bindparam("created_at", type_=sa.DateTime(timezone=True)),
            sa.bindparam("member", type_=sa.ARRAY(sa.Text())),
            sa.bindparam("lock_timeout", type_=sa.Text()),
        )
    return statement


async def insert_numbered(
    session: AsyncSession,
    record: Any,
    *,
    counter: Any,
    prefix: str,
    year: int,
    column: str,
    member: str,
    created: Callable[[Any], CloudEvent],
) -> None:
    """Insert `record` (an ORM instance with a uuid `id`) numbered `<prefix>-<year>-N` in `column`,
    and its event `created(record)`, whose `data.<member>` is the number. The counter row is held
    only for the last statement and the commit (see the module's note). The record (and the children
    it holds) is inserted here, with Core (crm_common.db.insert_new: it stays out of the session): a
    unique violation of its own columns is raised before any number is taken."""
    if dialect_name(session) != "postgresql":
        # One writer at a time on SQLite anyway: the number first, as everywhere else.
        setattr(record, column, await next_number(session, counter, prefix, year))
        await insert_new(session, record)
        await add_events(session, created(record))
        return
    setattr(record, column, record.id.hex)  # a unique placeholder, 32 characters
    await insert_new(session, record)
    event = created(record)
    statement = _number_and_publish(
        session, getattr(counter, "__table__", counter), type(record).__table__, column
    )
    values = {
        "year": year,
        "prefix": f"{prefix}-{year}-",
        "record_id": record.id,
        "event_id": event.id,
        "routing_key": event.routing_key,
        "payload": json.dumps(event.model_dump(mode="json", exclude_none=True)),
        "member": ["data", member],
        "created_at": utcnow(),
        "lock_timeout": _lock_timeout(session),
    }
    # The year's row exists for all but its first number (see `take`).
    number = (await session.execute(statement, values)).scalar_one_or_none()
    if number is None:
        # No row: the statement bounded the wait and did not put it back. The insert waits bounded
        # too (for a transaction creating the same row); then the bound is undone before the statement
        # runs again, so that it puts back the value from before.
        await ensure_year(session, counter, year)
        await session.execute(_RESET_LOCK_TIMEOUT)
        number = (await session.execute(statement, values)).scalar_one()
    set_committed_value(record, column, number)
    events_written(session, [event])
