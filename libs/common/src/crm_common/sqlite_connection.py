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
- every statement and fetch of a write transaction once its BEGIN IMMEDIATE has the write lock: a
  WAL writer that holds the lock waits for nobody, and the service's writers take turns before it
  anyway (crm_common.db). Its statements are short inserts and updates by key.

On the worker thread, as before: BEGIN IMMEDIATE (it may wait up to the busy timeout for another
process's writer), the commit of a write transaction (it may run a WAL checkpoint, which syncs the
files), a rollback of one, and every statement of a read transaction (a search may scan a table; on
the thread the loop serves other requests meanwhile, as SQLite releases the GIL while it works).
"""

import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import aiosqlite

_ITER_CHUNK_SIZE = 64  # aiosqlite.connect's default


_FETCHES = frozenset({"execute", "executemany", "fetchone", "fetchmany", "fetchall"})

# aiosqlite's own `_execute` (the call handed to the connection's worker thread), which it leaves
# unannotated: this is its signature. Calls go through here rather than `super()._execute`.
_on_thread: Callable[..., Awaitable[Any]] = aiosqlite.Connection._execute


class LoopSideConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls that cannot wait run on the calling (loop) thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        # Holds the write lock: its BEGIN IMMEDIATE went through, no commit or rollback since.
        self._writing = False
        # SQLite's count of changed rows when the current read transaction began: a read
        # transaction that wrote after all (a deferred BEGIN takes the lock at the first write)
        # commits on the thread, like any writer.
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
                    result = await _on_thread(self, fn, *args, **kwargs)
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
                try:
                    return await _on_thread(self, fn, *args, **kwargs)
                finally:
                    self._writing = connection.in_transaction
        return await _on_thread(self, fn, *args, **kwargs)


def connect(database: str, **kwargs: Any) -> LoopSideConnection:
    """`aiosqlite.connect` for a `LoopSideConnection` (SQLAlchemy's `async_creator_fn`). The
    connection is used from its worker thread and from the loop's, one call at a time."""
    kwargs["check_same_thread"] = False
    connection = LoopSideConnection(partial(sqlite3.connect, database, **kwargs), _ITER_CHUNK_SIZE)
    connection._thread.daemon = True  # as SQLAlchemy's dialect sets it for aiosqlite's own
    return connection
