"""Engine factory with the dialect switch, and the one way to run a transaction.

SQLite (embedded default): one file per service, WAL, foreign keys on, a busy timeout, and every
writing transaction opened with BEGIN IMMEDIATE so two writers queue instead of failing on lock
upgrade; within the process, writers take turns on an asyncio lock first (in arrival order).
Postgres: the service's own schema first on the search_path, so models carry no schema name.
"""

import asyncio
import fcntl
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import CursorResult, Result, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor, Dialect, ExecutionContext
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapper, RelationshipDirection
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import ConnectionPoolEntry

from crm_common import sqlite_connection

AFTER_COMMIT = "crm_after_commit"
# Execution option marking a transaction that only reads.
READ_ONLY = "crm_read_only"
# Execution option marking a Postgres connection whose statements each run on their own (`reads()`).
STATEMENT_READS = "crm_statement_reads"
# What such a connection may run: a statement that writes there would commit on its own, half of a
# request's work, so it is refused instead (a read that needs to write takes a transaction).
_READ_STATEMENTS = ("SELECT", "WITH", "(", "SHOW", ";")
# As long as SQLite's own busy timeout: a writer waiting longer fails instead of hanging
# (LockWaitTimeout, answered 503 OVERLOADED like a Postgres lock timeout).
SQLITE_WRITE_WAIT_SECONDS = sqlite_connection.BUSY_TIMEOUT_MS / 1000
# How long a write waits for a year's counter row (crm_common.numbering) on Postgres, unless the
# service's `numbering_lock_timeout_seconds` says otherwise; Session.info key carrying it.
NUMBERING_LOCK_TIMEOUT_SECONDS = 2.0
NUMBERING_LOCK_TIMEOUT = "crm_numbering_lock_timeout"
# Session.info key: the Database callback that tells outbox relays new events were committed.
OUTBOX_WRITTEN = "crm_outbox_written"


def async_url(url: str) -> str:
    """Accept the plain URLs operators write and pick the async driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


class LockWaitTimeout(TimeoutError):
    """A writer waited longer than its bound for its SQLite write turn: the transaction never began,
    nothing was written (answered 503 OVERLOADED, crm_common.errors)."""


@functools.cache
def sqlite_has_trigram_search() -> bool:
    """Whether this Python's SQLite has FTS5 with the trigram tokenizer (SQLite 3.34 and later, built
    with FTS5, as the usual builds are): what substring-search indexes need on SQLite."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='trigram')")
        return True
    except sqlite3.Error:
        return False
    finally:
        probe.close()


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


# What an INSERT is built for: a session or connection (the dialect of its bind), an engine, or a
# dialect's name ("postgresql", "sqlite") for a statement built once ahead of use.
Bind = AsyncSession | AsyncConnection | AsyncEngine | str


def dialect_name(bind: Bind) -> str:
    if isinstance(bind, str):
        return bind
    if isinstance(bind, AsyncSession):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def insert_for(bind: Bind, table: Any) -> postgresql.Insert | sqlite.Insert:
    """The one dialect-neutral INSERT (with upserts): `insert_for(session, Table).values(...)` then
    `.on_conflict_do_nothing(index_elements=[...])` or `.on_conflict_do_update(index_elements=[...],
    set_={...})`, reading `.excluded` for the proposed row. Postgres and SQLite spell these the same;
    only the statement class differs, so this picks it, and no other code imports the dialects for it.
    """
    if dialect_name(bind) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


# How long a request waits for a pooled connection before it is answered 503 OVERLOADED (SQLAlchemy's
# default is 30 s). Admission control keeps requests within the pool, so a wait is rare and short.
POOL_TIMEOUT_SECONDS = 5.0


def create_engine(url: str, *, schema: str, pool_size: int = 10) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_timeout=POOL_TIMEOUT_SECONDS)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        # A small overflow: connections beyond the pool are opened and closed per use, which costs
        # more than waiting briefly for a pooled one. Consumers stay within the pool (prefetch).
        max_overflow=max(2, pool_size // 2),
        pool_recycle=1800,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"server_settings": {"search_path": schema, "application_name": f"crm-{schema}"}},
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "do_connect")
    def _loop_side_connection(
        _dialect: Dialect, _record: ConnectionPoolEntry, _cargs: list[Any], cparams: dict[str, Any]
    ) -> None:
        # aiosqlite's connection with the calls that cannot wait kept on the loop's thread.
        cparams["async_creator_fn"] = sqlite_connection.connect

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see the "begin" hook).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={sqlite_connection.BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # The connection checkpoints itself, off the loop (crm_common.sqlite_connection).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front (no deadlock on lock upgrade); readers do not, so
        # WAL lets them run beside a writer.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


async def ensure_schema(engine: AsyncEngine, schema: str) -> None:
    if is_sqlite(engine):
        return
    async with engine.begin() as conn:
        # Look first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema
        # exists, which a service's own role (owner of its schema only) does not have.
        found = await conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema})
        if found.first() is None:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))


class Database:
    """A service's engine and session factory.

    `transaction()` is the only way code writes: one session, one commit, rollback on any error,
    then the callbacks registered on the session (the outbox relay's wake-up) once it committed.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str,
        pool_size: int = 10,
        numbering_lock_timeout: float = NUMBERING_LOCK_TIMEOUT_SECONDS,
        writers_elsewhere: bool = False,
    ):
        """`writers_elsewhere`: other processes write to this SQLite file too (`crm up --workers N`)."""
        self.schema = schema
        self.engine = create_engine(url, schema=schema, pool_size=pool_size)
        self.outbox_listeners: list[Callable[[], None]] = []
        self.sessions = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            info={OUTBOX_WRITTEN: self.outbox_grew, NUMBERING_LOCK_TIMEOUT: numbering_lock_timeout},
        )
        # Read-only sessions are bound to the same engine (same pool) with the read-only option, so
        # they take a connection at their first query, not when opened: a request's session then
        # holds no connection while its dependencies (the session guard's directory read) take one.
        # Held from the start, a burst of pool-size requests waited for a connection none would give
        # back (the pool's 30 s timeout).
        self._read_engine = self.engine.execution_options(**{READ_ONLY: True})
        # Postgres reads outside a transaction (`reads()`): the connection is switched to autocommit
        # at checkout and back at return, both without a round trip (asyncpg's adapter only skips or
        # sends BEGIN), so each statement costs one round trip instead of three.
        self._statement_engine = (
            self._read_engine
            if is_sqlite(self.engine)
            else self._read_engine.execution_options(isolation_level="AUTOCOMMIT", **{STATEMENT_READS: True})
        )
        if not is_sqlite(self.engine):
            event.listen(self.engine.sync_engine, "before_cursor_execute", _refuse_writes_outside_transaction)
        # SQLite has one writer at a time. Writers of this process queue here, first come first
        # served, instead of in SQLite's busy handler, which polls with growing sleeps and lets a
        # late writer overtake one that has waited for seconds.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None
        # Writers of other processes, in turn: a lock file beside the database (`_file_locked`).
        self._writer_file = (
            os.open(f"{make_url(url).database}-writer", os.O_RDWR | os.O_CREAT, 0o600)
            if self.is_sqlite and writers_elsewhere
            else None
        )

    def outbox_grew(self) -> None:
        """Wakes whatever relays this outbox: called after a commit that wrote to it."""
        for listener in self.outbox_listeners:
            listener()

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        bind = self._read_engine if read_only else self.engine
        async with self._write_turn(read_only), self.sessions(bind=bind) as session:
            async with session.begin():
                yield session
        for callback in session.info.pop(AFTER_COMMIT, ()):
            callback()

    @asynccontextmanager
    async def reads(self) -> AsyncIterator[AsyncSession]:
        """A session for reads that need no one transaction around them, such as a GET's.

        Postgres: every statement runs on its own (autocommit), which saves the BEGIN and COMMIT
        round trips. At READ COMMITTED, which every transaction here uses, each statement of a
        transaction sees its own snapshot anyway, so several statements (a page and its total)
        agree no more and no less than they did inside BEGIN/COMMIT. A read that needs a
        transaction (`SET LOCAL`, a server-side cursor, one snapshot) uses
        `transaction(read_only=True)`. A statement that writes is refused here (RuntimeError).
        SQLite: a read transaction, as `transaction(read_only=True)` (WAL: one snapshot, no lock).
        Like that one, the session takes its connection at its first query."""
        async with self.sessions(bind=self._statement_engine) as session, session.begin():
            yield session

    @asynccontextmanager
    async def single_statements(self, *, read_only: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each commit on their own, for one read or one idempotent
        write that needs no transaction around it: on Postgres no BEGIN and COMMIT round trips. On
        SQLite a transaction as `transaction()` runs it (a writer takes its turn)."""
        if self.is_sqlite:
            async with (
                self._write_turn(read_only),
                (self._read_engine if read_only else self.engine).begin() as conn,
            ):
                yield conn
            return
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    def _write_turn(self, read_only: bool) -> AbstractAsyncContextManager[None]:
        if read_only or self._sqlite_writer is None:
            return nullcontext()
        return _acquired(self._sqlite_writer, SQLITE_WRITE_WAIT_SECONDS, self._writer_file)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._writer_file is not None:
            os.close(self._writer_file)
            self._writer_file = None


def _refuse_writes_outside_transaction(
    conn: Connection,
    _cursor: DBAPICursor,
    statement: str,
    _parameters: Any,
    _context: ExecutionContext | None,
    _executemany: bool,
) -> None:
    if conn.get_execution_options().get(STATEMENT_READS) and not statement.lstrip().upper().startswith(
        _READ_STATEMENTS
    ):
        raise RuntimeError(f"a write in a session of reads (Database.reads): {statement[:80]!r}")


@asynccontextmanager
async def _acquired(lock: asyncio.Lock, timeout: float, file: int | None) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout):
            await lock.acquire()
            try:
                if file is not None:
                    await _file_locked(file)
            except BaseException:
                lock.release()
                raise
    except TimeoutError:
        raise LockWaitTimeout(f"no SQLite write turn within {timeout:g} s") from None
    try:
        yield
    finally:
        if file is not None:
            fcntl.flock(file, fcntl.LOCK_UN)
        lock.release()


async def _file_locked(file: int) -> None:
    """This process's writer takes its turn among other processes' (one each, behind their own
    `_sqlite_writer`) on a lock file, tried every millisecond: SQLite's busy handler would wait for the
    write lock with sleeps growing to 100 ms, a tail of its own under steady writes."""
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(0.001)


async def insert_new(session: AsyncSession, record: Any) -> None:
    """INSERT a new ORM instance, and the one-to-many children it holds (a customer's addresses),
    with Core statements: a create's hot path without the unit of work, whose flush cost more than
    the INSERT itself (0.3-0.5 ms a customer). The rows are what the ORM would write: the columns as
    set on the instance, a None left out where the column has a default of its own, a version
    counter starting at 1. The instances stay out of the session: read them as built, and a query
    loads them afresh."""
    await _insert_rows(session, type(record), [record])
    for relationship in sa.inspect(type(record)).relationships:
        children = record.__dict__.get(relationship.key)
        if relationship.direction is RelationshipDirection.ONETOMANY and children:
            await _insert_rows(session, relationship.mapper.class_, list(children))


async def _insert_rows(session: AsyncSession, model: type, records: list[Any]) -> None:
    insert, columns, version = _insert_shape(model)
    for record in records:
        if version is not None and getattr(record, version) is None:
            set_committed_value(record, version, 1)
        row = {
            key: value
            for key, attribute, has_default in columns
            if (value := getattr(record, attribute)) is not None or not has_default
        }
        await session.execute(insert, row)  # rows may leave out different columns: one statement each


@functools.cache
def _insert_shape(model: type) -> tuple[sa.Insert, list[tuple[str, str, bool]], str | None]:
    """(INSERT, [(column key, attribute, whether the column has a default)], version attribute)."""
    mapper: Mapper[Any] = sa.inspect(model)
    table = cast(sa.Table, mapper.local_table)
    columns = [
        (column.key, mapper.get_property_by_column(column).key, bool(column.default or column.server_default))
        for column in table.columns
    ]
    version_column = mapper.version_id_col
    version = None if version_column is None else mapper.get_property_by_column(version_column).key
    return sa.insert(table), columns, version


def not_writing_records() -> sa.ColumnElement[bool]:
    """A condition that marks the Postgres transaction reading with it as one that writes no listed
    records (the outbox relay's, held open while it publishes), so incremental sync does not hold its
    cursor back for it: the sync frontier (crm_common.pagination) waits only for transactions under
    the service's own application name. An uncorrelated subquery, so Postgres evaluates it once,
    before the statement returns a row: the mark costs no statement of its own."""
    renamed = sa.func.set_config(
        "application_name", sa.func.current_setting("application_name").concat("-aside"), True
    )
    return sa.select(renamed).scalar_subquery().is_not(None)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    callbacks = session.info.setdefault(AFTER_COMMIT, [])
    if callback not in callbacks:
        callbacks.append(callback)


def affected(result: Result[Any]) -> int:
    """The rows an INSERT, UPDATE or DELETE touched. `session.execute` is typed as answering a plain
    `Result`; for such a statement it is a `CursorResult`, which carries the count."""
    return cast(CursorResult[Any], result).rowcount
