"""SQLite's short calls on the event loop's own thread (the embedded default's driver connection).

aiosqlite runs every call of a connection on that connection's worker thread: the loop hands it the
call, the thread waits for the GIL, runs it, and hands the result back through the loop's self-pipe.
SQLAlchemy makes four to five such calls per statement (cursor, execute, fetch, close, and a
rollback when the connection goes back to the pool), and a created customer costs about thirty
statements across the services' files: over a hundred hand-overs, each far dearer than the SQLite
work it carries (a few microseconds for an insert by key). Profiled, the loop's thread spent more
time handing calls over than running them.

`LoopSideConnection` is aiosqlite's connection with a rule for which calls stay on the thread:
only those that can wait. A call runs on the loop when it cannot wait for anything:

- opening and closing a cursor, and beginning a read transaction (a deferred BEGIN takes no lock);
- committing a read transaction (it wrote nothing, so it neither waits nor checkpoints), and a
  rollback when no transaction is open (nothing to do);
- BEGIN IMMEDIATE, tried once without waiting (the service's writers take turns before it, so the
  lock is nearly always free); only if another process holds the lock does it go to the thread,
  to wait there up to the busy timeout;
- every statement and fetch of a write transaction once it has the write lock: a WAL writer that
  holds the lock waits for nobody. Its statements are short inserts and updates by key;
- the commit of a write transaction: in WAL mode with synchronous=NORMAL it appends to the WAL
  without a sync. What syncs is a checkpoint, so SQLite's own (run by the commit that crosses
  1,000 pages) is off for these connections (`PRAGMA wal_autocheckpoint=0`, crm_common.db), and the
  commit that brings a database's changed rows past `CHECKPOINT_ROWS` since the last checkpoint runs
  a passive one on the thread before it returns. A transaction that changed more rows than that
  commits on the thread as a whole.

On the worker thread, as before: BEGIN IMMEDIATE while another process writes, a large commit and
the checkpoints, a rollback of a write transaction, and every statement of a read transaction (a
search may scan a table; on the thread the loop serves other requests meanwhile, as SQLite releases
the GIL while it works).

The write lock is held from BEGIN IMMEDIATE to the commit, and every other writer waits that long:
each hand-over to the thread in between cost it the loop's queue of ready work, more than the
SQLite work (profiled during creates: a customer's commit took 1.4 ms on the thread, 0.5 ms here).
"""

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiosqlite

log = logging.getLogger("crm.sqlite")

_ITER_CHUNK_SIZE = 64  # aiosqlite.connect's default

# How long a statement waits for another connection's lock (PRAGMA busy_timeout), in ms.
BUSY_TIMEOUT_MS = 30_000

# Rows a database's commits may change before one of them checkpoints the WAL: about SQLite's own
# 1,000 pages, as a changed row dirties its table's page and an index page or two.
CHECKPOINT_ROWS = 500

# Rows changed since the last checkpoint, per database file (of this process's connections).
_unchecked_rows: dict[str, int] = {}


_FETCHES = frozenset({"execute", "executemany", "fetchone", "fetchmany", "fetchall"})

# aiosqlite's own `_execute` (the call handed to the connection's worker thread), which it leaves
# unannotated: this is its signature. Calls go through here rather than `super()._execute`.
_on_thread: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute


class LoopSideConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls that cannot wait run on the calling (loop) thread."""

    def __init__(
        self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int, database: str = ""
    ) -> None:
        super().__init__(connector, iter_chunk_size)
        self._database = database
        # Holds the write lock: its BEGIN IMMEDIATE went through, no commit or rollback since.
        self._writing = False
        # SQLite's count of changed rows when the current transaction began: a read transaction
        # that wrote after all (a deferred BEGIN takes the lock at the first write) commits on the
        # thread, like a large write transaction.
        self._changes_at_begin = 0

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        connection: sqlite3.Connection = self._connection
        name = getattr(fn, "__name__", "")
        owner = getattr(fn, "__self__", None)
        if isinstance(owner, sqlite3.Cursor):
            if name == "close":
                return fn(*args, **kwargs)
            if self._writing and connection.in_transaction and name in _FETCHES:
                return fn(*args, **kwargs)
            if name == "execute" and not connection.in_transaction:
                statement = args[0].strip().upper()
                if statement == "BEGIN":
                    self._changes_at_begin = connection.total_changes
                    return fn(*args, **kwargs)
                if statement == "BEGIN IMMEDIATE":
                    result = await self._begin_writing(connection, fn, *args, **kwargs)
                    self._changes_at_begin = connection.total_changes
                    self._writing = True
                    return result
        elif owner is connection:
            if name == "cursor":
                return fn(*args, **kwargs)
            if name in ("commit", "rollback"):
                if not self._writing and (
                    not connection.in_transaction or connection.total_changes == self._changes_at_begin
                ):
                    return fn(*args, **kwargs)  # a read transaction's end, or nothing to end
                if name == "commit" and self._writing:
                    return await self._commit_writes(connection, fn)
                try:
                    return await _on_thread(self, fn, *args, **kwargs)
                finally:
                    self._writing = connection.in_transaction
        return await _on_thread(self, fn, *args, **kwargs)

    async def _begin_writing(
        self, connection: sqlite3.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """BEGIN IMMEDIATE on the loop if the lock is free, else on the thread, waiting for it."""
        _run(connection, "PRAGMA busy_timeout=0")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
        finally:
            _run(connection, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return await _on_thread(self, fn, *args, **kwargs)

    async def _commit_writes(self, connection: sqlite3.Connection, commit: Callable[[], None]) -> None:
        changed = connection.total_changes - self._changes_at_begin
        try:
            if changed > CHECKPOINT_ROWS:
                await _on_thread(self, commit)
            else:
                commit()
        finally:
            self._writing = connection.in_transaction
        unchecked = _unchecked_rows.get(self._database, 0) + changed
        if unchecked <= CHECKPOINT_ROWS:
            _unchecked_rows[self._database] = unchecked
            return
        _unchecked_rows[self._database] = 0
        try:
            await _on_thread(self, _run, connection, CHECKPOINT)
        except sqlite3.Error:
            # The transaction is committed, whatever became of the housekeeping after it: the log
            # is checkpointed by a later commit, or when the file's last connection closes.
            log.warning("checkpointing %s failed; a later commit tries again", self._database, exc_info=True)


CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"


def _run(connection: sqlite3.Connection, statement: str) -> None:
    # The cursor is closed at once: a statement left open (a PRAGMA answers a row) would refuse the
    # next commit.
    connection.execute(statement).close()


def connect(database: str, **kwargs: Any) -> LoopSideConnection:
    """`aiosqlite.connect` for a `LoopSideConnection` (SQLAlchemy's `async_creator_fn`). The
    connection is used from its worker thread and from the loop's, one call at a time."""
    kwargs["check_same_thread"] = False
    connection = LoopSideConnection(
        partial(sqlite3.connect, database, **kwargs), _ITER_CHUNK_SIZE, database=str(database)
    )
    connection._thread.daemon = True  # as SQLAlchemy's dialect sets it for aiosqlite's own
    return connection
