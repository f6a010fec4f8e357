"""The `idempotency_keys` table and the few statements on it.

A row is a key's claim while `status_code` is NULL ("in flight") and its stored outcome once set.
`created_at` doubles as the claim's token: a claim, its lease renewals and a takeover each write a
new value, and every later write of the claim is conditional on the value it wrote last. So a claim
that was taken over (its process hung past the lease) can no longer store an outcome or release the
key: its request transaction rolls back instead, and the change happens once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database, affected, insert_for
from crm_common.errors import ProblemError
from crm_common.models import UtcDateTime

RETENTION = timedelta(hours=24)
# A claim older than this whose request has not finished is presumed dead and may be taken over.
# Short, because a claim whose transaction never committed changed nothing: a retry is safe as soon
# as the first attempt is gone. Live streamed requests renew their lease (see the middleware).
LEASE = timedelta(seconds=10)

metadata = sa.MetaData()
keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer()),
    sa.Column("headers", sa.JSON()),
    sa.Column("body", sa.LargeBinary()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)


def create_idempotency_table_v1() -> None:
    """For a service's migration (a frozen snapshot)."""
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("headers", sa.JSON()),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_idempotency_table_v1() -> None:
    op.drop_table("idempotency_keys")


@dataclass
class Outcome:
    status: int
    headers: list[list[str]]
    body: bytes
    # The stored request's hash, when read back (a streamed request compares it after its body).
    request_hash: str | None = None


@dataclass
class Held:
    """A claim this process holds: `token` is the row's `created_at` as last written by it."""

    principal: str
    key: str
    token: datetime

    def mine(self) -> sa.ColumnElement[bool]:
        return (
            (keys.c.principal == self.principal)
            & (keys.c.key == self.key)
            & (keys.c.created_at == self.token)
            & keys.c.status_code.is_(None)
        )


async def claim(
    db: Database, principal: str, key: str, digest: str, *, check_finished: bool = True
) -> Held | Outcome:
    """Claim the key, or give its stored outcome; a problem if another request holds it.

    `check_finished=False` returns a stored outcome without comparing `digest` (a streamed request
    compares the digest of its whole body once it has read it)."""
    now = datetime.now(UTC)
    where = (keys.c.principal == principal) & (keys.c.key == key)
    async with db.transaction() as session:
        await session.execute(sa.delete(keys).where(keys.c.created_at < now - RETENTION))
        inserted = await session.execute(
            insert_for(session, keys)
            .values(principal=principal, key=key, request_hash=digest, created_at=now)
            .on_conflict_do_nothing(index_elements=["principal", "key"])
        )
        if affected(inserted) == 1:
            return Held(principal, key, now)
        row = (await session.execute(sa.select(keys).where(where).with_for_update())).one()
        if row.status_code is not None:
            if check_finished and row.request_hash != digest:
                raise reused()
            return Outcome(row.status_code, row.headers or [], row.body or b"", row.request_hash)
        if row.request_hash != digest:
            raise reused()
        if now - row.created_at < LEASE:
            raise in_use()
        # The first attempt's process died (or hung past its lease): its transaction never committed
        # (else the outcome would be here), so this retry takes the key over.
        await session.execute(
            sa.update(keys).where(Held(principal, key, row.created_at).mine()).values(created_at=now)
        )
        return Held(principal, key, now)


async def store_in(
    session: AsyncSession, held: Held, outcome: Outcome, request_hash: str | None = None
) -> bool:
    """Store the outcome in `session`'s transaction; False if the claim was taken over meanwhile."""
    values = {"status_code": outcome.status, "headers": outcome.headers, "body": outcome.body}
    if request_hash is not None:
        values["request_hash"] = request_hash
    result = await session.execute(sa.update(keys).where(held.mine()).values(**values))
    return affected(result) == 1


async def store(db: Database, held: Held, outcome: Outcome, request_hash: str | None = None) -> bool:
    async with db.transaction() as session:
        return await store_in(session, held, outcome, request_hash)


async def release(db: Database, held: Held) -> None:
    """Nothing was done: free the key so a retry runs."""
    async with db.transaction() as session:
        await session.execute(sa.delete(keys).where(held.mine()))


async def renew(db: Database, held: Held) -> bool:
    now = datetime.now(UTC)
    async with db.transaction() as session:
        result = await session.execute(sa.update(keys).where(held.mine()).values(created_at=now))
    if affected(result) != 1:
        return False
    held.token = now
    return True


async def release_abandoned(db: Database) -> int:
    """At start of a process that is the only one using its database (SQLite): every claim still in
    flight belonged to a process that died, and its transaction never committed. Free them all."""

    def has_table(conn: sa.Connection) -> bool:
        return sa.inspect(conn).has_table("idempotency_keys")

    async with db.transaction() as session:
        if not await (await session.connection()).run_sync(has_table):
            return 0
        result = await session.execute(sa.delete(keys).where(keys.c.status_code.is_(None)))
        return affected(result)


def reused() -> ProblemError:
    return ProblemError(
        422, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with a different request."
    )


def in_use() -> ProblemError:
    return ProblemError(
        409,
        "IDEMPOTENCY_KEY_IN_USE",
        "A request with this Idempotency-Key is still being processed; retry shortly for its outcome.",
        headers={"Retry-After": "1"},
    )
