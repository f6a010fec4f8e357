"""SQLite's short calls on the loop's thread (crm_common.sqlite_connection): what may wait still
waits off the loop, and a transaction's work lands whole or not at all."""

import asyncio
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from crm_common import sqlite_connection
from crm_common.db import Database
from crm_common.sqlite_connection import CHECKPOINT_ROWS

items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))


@pytest.fixture
async def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'loop.db'}", schema="loop")
    async with database.engine.begin() as conn:
        await conn.run_sync(items.metadata.create_all)
    yield database
    await database.dispose()


async def ids(db: Database) -> list[int]:
    async with db.transaction(read_only=True) as s:
        return list((await s.execute(sa.select(items.c.id).order_by(items.c.id))).scalars())


async def test_a_writer_waiting_for_another_process_lock_leaves_the_loop_free(sqlite_db, tmp_path):
    """Another process (here a plain connection on a thread) holds the write lock until a read of
    this process has been served: if waiting for the lock held the loop, the read could never run
    and the writer would fail after SQLite's busy timeout instead of writing."""
    locked, read_done = threading.Event(), threading.Event()

    def other_process() -> None:
        conn = sqlite3.connect(tmp_path / "loop.db", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO items (id) VALUES (1)")
        locked.set()
        read_done.wait(timeout=20)
        conn.execute("COMMIT")
        conn.close()

    holder = threading.Thread(target=other_process)
    holder.start()
    await asyncio.to_thread(locked.wait)
    order = []

    async def write() -> None:
        async with sqlite_db.transaction() as s:
            await s.execute(sa.insert(items).values(id=2))
        order.append("written")

    writer = asyncio.create_task(write())
    await asyncio.sleep(0)  # the writer is waiting for the lock now
    assert await ids(sqlite_db) == []  # the other process's row is not committed yet
    order.append("read")
    read_done.set()
    await writer
    await asyncio.to_thread(holder.join)
    assert order == ["read", "written"]
    assert await ids(sqlite_db) == [1, 2]


async def test_a_failed_write_transaction_leaves_nothing_and_the_connection_serves_the_next(sqlite_db):
    with pytest.raises(sa.exc.IntegrityError):
        async with sqlite_db.transaction() as s:
            await s.execute(sa.insert(items).values(id=1))
            await s.execute(sa.insert(items).values(id=1))
    assert await ids(sqlite_db) == []
    for n in (1, 2):  # the pool's connection is reused, its writing state reset
        async with sqlite_db.transaction() as s:
            await s.execute(sa.insert(items).values(id=n))
    assert await ids(sqlite_db) == [1, 2]


async def statements_by_thread(db: Database) -> list[tuple[str, bool]]:
    """Each SQL statement SQLite runs on `db`'s connections from now on, with whether it ran on this
    (the loop's) thread."""
    seen: list[tuple[str, bool]] = []
    here = threading.get_ident()

    @sa.event.listens_for(db.engine.sync_engine, "connect")
    def trace(dbapi_connection, _record) -> None:
        raw = dbapi_connection.driver_connection._connection
        raw.set_trace_callback(lambda sql: seen.append((sql, threading.get_ident() == here)))

    await db.engine.dispose()  # connections made before did not trace
    return seen


async def test_a_write_transaction_begins_and_commits_on_the_loop_when_no_one_else_writes(sqlite_db):
    seen = await statements_by_thread(sqlite_db)
    async with sqlite_db.transaction() as s:
        await s.execute(sa.insert(items).values(id=1))
    on_loop = {sql: loop for sql, loop in seen if sql in ("BEGIN IMMEDIATE", "COMMIT")}
    assert on_loop == {"BEGIN IMMEDIATE": True, "COMMIT": True}
    assert await ids(sqlite_db) == [1]


def rows_in_the_database_file(path) -> int:
    """Rows the database file itself holds, the write-ahead log left aside: what checkpoints moved."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    finally:
        conn.close()


async def test_small_commits_checkpoint_the_log_off_the_loop_as_it_grows(sqlite_db, tmp_path):
    seen = await statements_by_thread(sqlite_db)
    for n in range(1, CHECKPOINT_ROWS * 3):
        async with sqlite_db.transaction() as s:
            await s.execute(sa.insert(items).values(id=n))
    checkpoints = [loop for sql, loop in seen if sql == "PRAGMA wal_checkpoint(PASSIVE)"]
    assert len(checkpoints) >= 2 and not any(checkpoints)
    # SQLite's own checkpoint would have run in a commit, on the loop; it is off.
    assert rows_in_the_database_file(tmp_path / "loop.db") >= CHECKPOINT_ROWS * 2
    assert len(await ids(sqlite_db)) == CHECKPOINT_ROWS * 3 - 1


async def test_a_large_transaction_commits_off_the_loop(sqlite_db):
    seen = await statements_by_thread(sqlite_db)
    async with sqlite_db.transaction() as s:
        await s.execute(sa.insert(items), [{"id": n} for n in range(1, CHECKPOINT_ROWS + 2)])
    assert [loop for sql, loop in seen if sql == "COMMIT"] == [False]
    assert len(await ids(sqlite_db)) == CHECKPOINT_ROWS + 1


async def test_a_checkpoint_that_fails_does_not_fail_the_commit_before_it(sqlite_db, monkeypatch, caplog):
    monkeypatch.setattr(sqlite_connection, "CHECKPOINT", "SELECT * FROM no_such_table")
    for n in range(1, CHECKPOINT_ROWS + 3):
        async with sqlite_db.transaction() as s:
            await s.execute(sa.insert(items).values(id=n))
    assert len(await ids(sqlite_db)) == CHECKPOINT_ROWS + 2
    assert "checkpointing" in caplog.text and "a later commit tries again" in caplog.text
