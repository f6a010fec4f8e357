"""Yearly numbers (crm_common.numbering) on SQLite and Postgres: concurrent writers never get one
number twice, and a writer that rolls back gives its number back, so the committed numbers of a year
are 1..n with no gap. On Postgres a writer waits for the year's row a bounded time, then gives up
(503 OVERLOADED) with nothing written."""

import asyncio
import uuid
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa
from crm_common.db import Database, ensure_schema
from crm_common.errors import overloaded
from crm_common.events import tables
from crm_common.events.envelope import new_event
from crm_common.numbering import format_number, insert_numbered, next_number, next_numbers
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = sa.MetaData()
counters = sa.Table(
    "record_number_counters",
    metadata,
    sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_value", sa.Integer, nullable=False, default=0),
)
records = sa.Table(
    "numbered_records",
    metadata,
    sa.Column("number", sa.String(40), primary_key=True),
)


class Base(DeclarativeBase):
    metadata = metadata


class Ticketish(Base):
    """A record numbered as it is inserted, with its event (as customers and tickets are)."""

    __tablename__ = "numbered_with_events"
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[str] = mapped_column(sa.String(40), unique=True)


class RolledBack(Exception):
    pass


@pytest.fixture
async def db(database):
    url, schema = database
    db = Database(url, schema=schema)
    await ensure_schema(db.engine, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield db
    await db.dispose()


async def create(db: Database, *, fail: bool, count: int = 1) -> None:
    try:
        async with db.transaction() as session:
            numbers = await next_numbers(session, counters, "REC", 2026, count)
            await session.execute(sa.insert(records), [{"number": n} for n in numbers])
            await asyncio.sleep(0)  # let the others run while this one holds its numbers
            if fail:
                raise RolledBack
    except RolledBack:
        pass


async def test_concurrent_writers_get_distinct_gap_free_numbers(db):
    # 24 writers at once, every third rolls back, some take three numbers in one go.
    await asyncio.gather(*(create(db, fail=i % 3 == 0, count=3 if i % 4 == 1 else 1) for i in range(24)))
    async with db.transaction(read_only=True) as session:
        committed = sorted((await session.execute(sa.select(records.c.number))).scalars())
    values = sorted(int(n.rsplit("-", 1)[1]) for n in committed)
    assert values == list(range(1, len(values) + 1))  # distinct (primary key) and no gap
    assert len(values) == sum(3 if i % 4 == 1 else 1 for i in range(24) if i % 3 != 0)


async def test_each_year_counts_on_its_own_and_the_format_holds(db):
    async with db.transaction() as session:
        assert await next_number(session, counters, "INV", 2026) == "INV-2026-000001"
        assert await next_number(session, counters, "INV", 2027) == "INV-2027-000001"
        assert await next_number(session, counters, "INV", 2026) == "INV-2026-000002"
    assert format_number("TKT", 2026, 1_234_567) == "TKT-2026-1234567"


@asynccontextmanager
async def counter_row_held(db: Database, year: int):
    """Another writer in the middle of its transaction, holding `year`'s counter row."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold():
        async with db.transaction() as session:
            await next_number(session, counters, "REC", year)
            held.set()
            await release.wait()
            raise RolledBack  # its number goes back: the next one is the same again

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        yield
    finally:
        release.set()
        with pytest.raises(RolledBack):
            await holder


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_writer_waits_for_the_counter_row_a_bounded_time_then_is_overloaded(database):
    url, schema = database
    db = Database(url, schema=schema, numbering_lock_timeout=0.2)
    await ensure_schema(db.engine, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        await create(db, fail=False)  # REC-2026-000001: the year's row exists
        async with counter_row_held(db, 2026):
            with pytest.raises(DBAPIError) as refused:
                async with asyncio.timeout(30):  # a ceiling for a loaded machine, not a measure
                    await create(db, fail=False)
        problem = overloaded(refused.value)
        assert problem is not None and (problem.status, problem.code) == (503, "OVERLOADED")
        assert problem.headers == {"Retry-After": "1"}
        async with db.transaction() as session:
            assert await next_number(session, counters, "REC", 2026) == "REC-2026-000002"  # no gap
            # The bound was for the increment only: the rest of the transaction waits as before.
            assert (await session.execute(sa.text("SHOW lock_timeout"))).scalar_one() == "0"
            await session.execute(sa.insert(records), [{"number": "REC-2026-000002"}])
        async with db.transaction(read_only=True) as session:
            committed = sorted((await session.execute(sa.select(records.c.number))).scalars())
        assert committed == ["REC-2026-000001", "REC-2026-000002"]
    finally:
        await db.dispose()


def _created(record: Ticketish):
    return new_event("ticket.created", service="test", subject=record.id, data={"number": None})


async def _insert_numbered(session, year: int) -> Ticketish:
    record = Ticketish(id=uuid.uuid4())
    await insert_numbered(
        session,
        record,
        counter=counters,
        prefix="REC",
        year=year,
        column="number",
        member="number",
        created=_created,
    )
    return record


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_numbered_insert_bounds_its_own_wait_only(database):
    """insert_numbered bounds the wait for the counter row within its one statement: the rest of the
    transaction waits as before, on the year's first number (the counter row is made) as on the next."""
    url, schema = database
    db = Database(url, schema=schema, numbering_lock_timeout=0.2)
    await ensure_schema(db.engine, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.run_sync(tables.metadata.create_all)
    show = sa.text("SHOW lock_timeout")
    try:
        async with db.transaction() as session:
            first = await _insert_numbered(session, 2031)
            assert (await session.execute(show)).scalar_one() == "0"
            second = await _insert_numbered(session, 2031)
            assert (await session.execute(show)).scalar_one() == "0"
        assert (first.number, second.number) == ("REC-2031-000001", "REC-2031-000002")
        async with db.transaction(read_only=True) as session:
            payloads = (await session.execute(sa.select(tables.outbox.c.payload))).scalars().all()
        assert sorted(p["data"]["number"] for p in payloads) == ["REC-2031-000001", "REC-2031-000002"]

        async with counter_row_held(db, 2031):
            with pytest.raises(DBAPIError) as refused:
                async with asyncio.timeout(30):  # a ceiling for a loaded machine, not a measure
                    async with db.transaction() as session:
                        await _insert_numbered(session, 2031)
        problem = overloaded(refused.value)
        assert problem is not None and (problem.status, problem.code) == (503, "OVERLOADED")
        async with db.transaction(read_only=True) as session:
            assert (
                await session.execute(sa.select(sa.func.count()).select_from(Ticketish))
            ).scalar_one() == 2
    finally:
        await db.dispose()
