"""Database.transaction on SQLite: writers take turns in arrival order, readers do not wait."""

import asyncio
import fcntl
import os

import pytest
import sqlalchemy as sa
from crm_common import db as db_module
from crm_common.db import Database, LockWaitTimeout, insert_new
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


@pytest.fixture
async def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'turns.db'}", schema="turns")
    async with database.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE log (n INTEGER)"))
    yield database
    await database.dispose()


async def test_waiting_writers_go_in_the_order_they_came(sqlite_db):
    first_holds = asyncio.Event()
    release = asyncio.Event()

    async def first():
        async with sqlite_db.transaction() as s:
            await s.execute(sa.text("INSERT INTO log VALUES (0)"))
            first_holds.set()
            await release.wait()

    async def writer(n: int):
        async with sqlite_db.transaction() as s:
            await s.execute(sa.text("INSERT INTO log VALUES (:n)"), {"n": n})

    holder = asyncio.create_task(first())
    await first_holds.wait()
    waiting = []
    for n in range(1, 9):
        waiting.append(asyncio.create_task(writer(n)))
        await asyncio.sleep(0.01)  # each one queued before the next arrives
    # A reader is not held up by the writer in progress (WAL).
    async with asyncio.timeout(2):
        async with sqlite_db.transaction(read_only=True) as s:
            assert (await s.execute(sa.text("SELECT count(*) FROM log"))).scalar_one() == 0
    release.set()
    await asyncio.gather(holder, *waiting)
    async with sqlite_db.transaction(read_only=True) as s:
        order = (await s.execute(sa.text("SELECT n FROM log ORDER BY rowid"))).scalars().all()
    assert order == list(range(9))


async def test_a_writer_that_waits_too_long_fails_instead_of_hanging(sqlite_db, monkeypatch):
    monkeypatch.setattr(db_module, "SQLITE_WRITE_WAIT_SECONDS", 0.2)
    release = asyncio.Event()
    holds = asyncio.Event()

    async def hold():
        async with sqlite_db.transaction():
            holds.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holds.wait()
    with pytest.raises(LockWaitTimeout):  # answered 503 OVERLOADED (crm_common.errors.overloaded)
        async with sqlite_db.transaction():
            pass
    release.set()
    await holder
    async with sqlite_db.transaction() as s:  # the turn was given back
        await s.execute(sa.text("INSERT INTO log VALUES (1)"))


@pytest.fixture
async def two_processes(tmp_path):
    """Two Database objects on one file as two `crm up --workers` processes have them: each with its
    own descriptor of the lock file, on which flock makes them exclude each other as processes do."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = (Database(url, schema="shared", writers_elsewhere=True) for _ in range(2))
    async with first.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE log (n INTEGER)"))
    yield first, second
    await first.dispose()
    await second.dispose()


def lock_file_taken(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def test_writers_in_other_processes_take_turns_on_a_lock_file(two_processes, tmp_path, monkeypatch):
    first, second = two_processes
    lock_file = tmp_path / "shared.db-writer"
    holds, release = asyncio.Event(), asyncio.Event()

    async def hold():
        async with first.transaction() as s:
            await s.execute(sa.text("INSERT INTO log VALUES (1)"))
            holds.set()
            await release.wait()

    async def write(n: int):
        async with second.transaction() as s:
            await s.execute(sa.text("INSERT INTO log VALUES (:n)"), {"n": n})

    holder = asyncio.create_task(hold())
    await holds.wait()
    assert lock_file_taken(lock_file)
    waiting = asyncio.create_task(write(2))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    release.set()
    async with asyncio.timeout(2):
        await asyncio.gather(holder, waiting)
    assert not lock_file_taken(lock_file)  # given back after each transaction
    async with second.transaction(read_only=True) as s:
        assert (await s.execute(sa.text("SELECT n FROM log ORDER BY rowid"))).scalars().all() == [1, 2]

    # Waiting too long for the other process is the same 503 as within one, and gives the turn back.
    monkeypatch.setattr(db_module, "SQLITE_WRITE_WAIT_SECONDS", 0.2)
    holds.clear()
    release.clear()
    holder = asyncio.create_task(hold())
    await holds.wait()
    with pytest.raises(LockWaitTimeout):
        await write(3)
    release.set()
    await holder
    await write(4)
    async with second.transaction(read_only=True) as s:
        assert (await s.execute(sa.text("SELECT n FROM log ORDER BY rowid"))).scalars().all() == [1, 2, 1, 4]


async def test_a_reading_transaction_takes_no_connection_until_it_queries(sqlite_db):
    """A request opens its session before its dependencies run (the session guard reads the user
    directory in a transaction of its own): sessions that have not queried yet must not hold the
    pool's connections, or a burst of pool-size requests waits for a connection none gives back."""
    pool = sqlite_db.engine.sync_engine.pool
    size = pool.size() + pool._max_overflow
    opened = asyncio.Event()
    release = asyncio.Event()
    sessions_open = 0

    async def idle_reader():
        nonlocal sessions_open
        async with sqlite_db.transaction(read_only=True):
            sessions_open += 1
            if sessions_open == size:
                opened.set()
            await release.wait()

    readers = [asyncio.create_task(idle_reader()) for _ in range(size)]
    await opened.wait()
    assert pool.checkedout() == 0
    async with sqlite_db.transaction(read_only=True) as s:
        assert (await s.execute(sa.text("SELECT count(*) FROM log"))).scalar_one() == 0
    release.set()
    await asyncio.gather(*readers)


@pytest.fixture
async def both_db(database):
    url, schema = database
    db = Database(url, schema=schema)
    await db_module.ensure_schema(db.engine, schema)
    async with db.transaction() as s:
        await s.execute(sa.text("CREATE TABLE log (n INTEGER)"))
    yield db
    await db.dispose()


async def test_reads_see_what_was_committed_and_refuse_to_write(both_db):
    """Database.reads (a GET's session): reads as a read transaction does; a write there (on
    Postgres each statement would commit on its own) is refused and nothing is written."""
    async with both_db.transaction() as s:
        await s.execute(sa.text("INSERT INTO log VALUES (1)"))
    async with both_db.reads() as s:
        assert (await s.execute(sa.text("SELECT count(*) FROM log"))).scalar_one() == 1
        assert (await s.execute(sa.text("WITH c AS (SELECT n FROM log) SELECT max(n) FROM c"))).scalar() == 1
    if not both_db.is_sqlite:
        with pytest.raises(RuntimeError, match="a write in a session of reads"):
            async with both_db.reads() as s:
                await s.execute(sa.text("INSERT INTO log VALUES (2)"))
    async with both_db.transaction(read_only=True) as s:
        assert (await s.execute(sa.text("SELECT count(*) FROM log"))).scalar_one() == 1


async def test_reads_leave_no_transaction_and_give_back_a_transactional_connection(both_db):
    """On Postgres a session of reads runs outside a transaction (no BEGIN/COMMIT round trips); the
    pooled connection it used is back in transaction mode for the next writer, whose statements are
    atomic again."""
    xid = sa.text("SELECT 1" if both_db.is_sqlite else "SELECT pg_current_xact_id()::text")
    for _ in range(both_db.engine.sync_engine.pool.size() + 1):
        async with both_db.reads() as s:
            first, second = [(await s.execute(xid)).scalar_one() for _ in range(2)]
            assert (first != second) if not both_db.is_sqlite else first == second
    with pytest.raises(sa.exc.DBAPIError):
        async with both_db.transaction() as s:
            await s.execute(sa.text("INSERT INTO log VALUES (3)"))
            await s.execute(sa.text("INSERT INTO nowhere VALUES (3)"))
    async with both_db.reads() as s:
        assert (await s.execute(sa.text("SELECT count(*) FROM log"))).scalar_one() == 0


async def test_insert_for_upserts_on_the_sessions_dialect(sqlite_db):
    """The one dialect-neutral INSERT: on conflict do nothing, then do update from `excluded`."""
    async with sqlite_db.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE counters (year INTEGER PRIMARY KEY, n INTEGER)"))
    counters = sa.table("counters", sa.column("year"), sa.column("n"))
    async with sqlite_db.transaction() as s:
        first = db_module.insert_for(s, counters).values(year=2026, n=1)
        assert db_module.affected(await s.execute(first.on_conflict_do_nothing(index_elements=["year"]))) == 1
        again = db_module.insert_for(s, counters).values(year=2026, n=5)
        assert db_module.affected(await s.execute(again.on_conflict_do_nothing(index_elements=["year"]))) == 0
        bump = db_module.insert_for(s, counters).values(year=2026, n=1)
        bump = bump.on_conflict_do_update(index_elements=["year"], set_={"n": counters.c.n + bump.excluded.n})
        await s.execute(bump)
        assert (await s.execute(sa.text("SELECT n FROM counters"))).scalar_one() == 2
    assert type(db_module.insert_for("postgresql", counters)).__module__.startswith(
        "sqlalchemy.dialects.postgresql"
    )


# --- insert_new: a new ORM instance's rows with Core ---------------------------------------------------


class _Base(DeclarativeBase):
    pass


class _Parent(_Base):
    __tablename__ = "insert_new_parents"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(sa.String(20))
    status: Mapped[str | None] = mapped_column(sa.String(10), server_default="NEW")
    version: Mapped[int] = mapped_column(nullable=False)
    children: Mapped[list["_Child"]] = relationship()
    __mapper_args__ = {"version_id_col": version}


class _Child(_Base):
    __tablename__ = "insert_new_children"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(sa.ForeignKey("insert_new_parents.id"))
    label: Mapped[str] = mapped_column(sa.String(20))


async def test_insert_new_writes_what_a_flush_would(both_db):
    """The row as set (a None left to the column's own default), the version counter at 1, the
    children held; the instance stays out of the session, and a failed insert raises as a flush."""
    async with both_db.engine.begin() as conn:
        await conn.run_sync(_Base.metadata.create_all)
    parent = _Parent(id=1, name=None, status=None, children=[_Child(id=1, parent_id=1, label="a")])
    async with both_db.transaction() as s:
        await insert_new(s, parent)
        assert parent not in s
    assert parent.version == 1
    async with both_db.transaction(read_only=True) as s:
        row = (await s.execute(sa.select(_Parent.__table__))).one()
        labels = (await s.execute(sa.select(_Child.label))).scalars().all()
    assert (row.name, row.status, row.version) == (None, "NEW", 1)
    assert labels == ["a"]
    with pytest.raises(sa.exc.IntegrityError):
        async with both_db.transaction() as s:
            await insert_new(s, _Parent(id=1, name="again"))
