"""SQLite's short calls on the loop's thread (crm_common.sqlite_connection): what may wait still
waits off the loop, and a transaction's work lands whole or not at all."""

import asyncio
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from crm_common.db import Database

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
