"""Durable dead letters: an event a consumer could not apply, kept in that consumer's own database.

Both buses retry a failing handler with a growing pause; when the retries are spent (or at once for a
`PermanentEventError`) the event is written here, with its full payload, before the delivery counts
as done. On the in-process bus the outbox row is marked PUBLISHED only after every subscriber has
applied the event or recorded it here: if even this write fails (the database file is unwritable),
the publish fails and the relay tries again later. On RabbitMQ the message is acknowledged only after
this write; if it fails, the broker's own dead-letter queue (`<service>.events.dlq`) takes it.

Operators list, show, replay and purge them with `crm events dlq ...` (crm_gateway.dlq). A replay
runs the handler through the normal inbox, so a replayed event that was already applied changes
nothing, and removes the row once it succeeded.
"""

import hashlib
import traceback
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql

from crm_common.db import Database, insert_for
from crm_common.events.envelope import CloudEvent
from crm_common.models import JSONType, UtcDateTime
from crm_common.sql_types import AnyRow

metadata = sa.MetaData()

dead_letters = sa.Table(
    "event_dead_letters",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("consumer", sa.String(100), nullable=False),
    sa.Column("event_id", sa.Uuid(), nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("payload", JSONType, nullable=False),
    # The last failure: a one-line summary, then the traceback.
    sa.Column("error", sa.Text(), nullable=False),
    # Deliveries that failed, over every dead-lettering of this event (a failed replay adds one).
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("first_failed_at", UtcDateTime(), nullable=False),
    sa.Column("last_failed_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("consumer", "event_id", name="uq_event_dead_letters_consumer_event"),
)

DEAD_LETTERED = Counter(
    "crm_events_dead_lettered_total",
    "Events a consumer gave up on and recorded as dead letters",
    ["consumer"],
)

# What a bus calls when it gives up on an event: (event, the last error, failed deliveries, first
# failure time or None). Raises if the dead letter could not be recorded.
DeadLetterSink = Callable[[CloudEvent, BaseException, int, datetime | None], Awaitable[None]]


class PermanentEventError(Exception):
    """The event can never be applied as it is (it breaks its contract, say): it is dead-lettered at
    once, without retries. Handlers raise it; the inbox dispatcher turns a contract validation error
    (pydantic's ValidationError) into one."""


class DeadLetterWriteFailed(Exception):
    """A consumer gave up on an event and could not record it either: the delivery is not done."""


def create_dead_letter_table_v1() -> None:
    """For a service's migration. A frozen snapshot: later changes get their own `_v2`."""
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "event_dead_letters",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("consumer", sa.String(100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("payload", json_type, nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("consumer", "event_id", name="uq_event_dead_letters_consumer_event"),
    )


def drop_dead_letter_table_v1() -> None:
    op.drop_table("event_dead_letters")


def describe(error: BaseException) -> str:
    """A one-line summary, then the traceback (cut to a sane size)."""
    summary = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    trace = "".join(traceback.format_exception(error))
    return f"{summary}\n{trace[-8000:]}"


async def record(
    db: Database,
    consumer: str,
    event: CloudEvent,
    error: BaseException,
    attempts: int,
    first_failed_at: datetime | None = None,
) -> None:
    """Write (or update) the consumer's dead letter for `event`, in its own transaction."""
    now = datetime.now(UTC)
    stmt = insert_for(db.engine, dead_letters).values(
        consumer=consumer,
        event_id=event.id,
        event_type=event.type,
        payload=event.model_dump(mode="json", exclude_none=True),
        error=describe(error),
        attempts=max(1, attempts),
        first_failed_at=first_failed_at or now,
        last_failed_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["consumer", "event_id"],
        set_={
            "attempts": dead_letters.c.attempts + stmt.excluded.attempts,
            "error": stmt.excluded.error,
            "last_failed_at": stmt.excluded.last_failed_at,
        },
    )
    async with db.transaction() as session:
        await session.execute(stmt)
    DEAD_LETTERED.labels(consumer).inc()


# What a dead letter of an unreadable message (crm_common.events.acceptance) is stored as: it has no
# event id or type, so it gets a stand-in id derived from its bytes (the same message redelivered is
# one row) and this type; its payload keeps the start of the message, enough to see what it was.
UNREADABLE_TYPE = "(unreadable)"
UNREADABLE_KEPT_BYTES = 4096


def unreadable_id(body: bytes) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:crm:unreadable:{hashlib.sha256(body).hexdigest()}")


async def record_unreadable(
    db: Database, consumer: str, body: bytes, error: BaseException, *, message_id: str | None = None
) -> uuid.UUID:
    """Write (or count again) the consumer's dead letter for a message that is not an event."""
    now = datetime.now(UTC)
    ident = unreadable_id(body)
    payload = {
        "unreadable": True,
        "messageId": message_id,
        "size": len(body),
        # NUL cannot be stored in a Postgres text (nor in JSONB): shown as the replacement character.
        "head": body[:UNREADABLE_KEPT_BYTES].decode("utf-8", "replace").replace("\x00", "\ufffd"),
    }
    stmt = insert_for(db.engine, dead_letters).values(
        consumer=consumer,
        event_id=ident,
        event_type=UNREADABLE_TYPE,
        payload=payload,
        error=describe(error),
        attempts=1,
        first_failed_at=now,
        last_failed_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["consumer", "event_id"],
        set_={"attempts": dead_letters.c.attempts + 1, "last_failed_at": stmt.excluded.last_failed_at},
    )
    async with db.transaction() as session:
        await session.execute(stmt)
    DEAD_LETTERED.labels(consumer).inc()
    return ident


class Recorder:
    """The sink a service hands its bus: records in the service's own database. A bus calls it for
    an event it gives up on, and `unreadable` for a message that is not an event at all."""

    def __init__(self, db: Database, consumer: str):
        self.db = db
        self.consumer = consumer

    async def __call__(
        self, event: CloudEvent, error: BaseException, attempts: int, first_failed_at: datetime | None
    ) -> None:
        try:
            await record(self.db, self.consumer, event, error, attempts, first_failed_at)
        except Exception as exc:
            raise DeadLetterWriteFailed(
                f"{self.consumer} could not record dead letter {event.type} {event.id}: {exc}"
            ) from exc

    async def unreadable(self, body: bytes, error: BaseException, *, message_id: str | None = None) -> None:
        try:
            await record_unreadable(self.db, self.consumer, body, error, message_id=message_id)
        except Exception as exc:
            raise DeadLetterWriteFailed(
                f"{self.consumer} could not record an unreadable message as a dead letter: {exc}"
            ) from exc


def recorder(db: Database, consumer: str) -> Recorder:
    return Recorder(db, consumer)


async def stored(db: Database, *, consumer: str | None = None) -> list[AnyRow]:
    """The dead letters in `db`, oldest first."""
    query = sa.select(dead_letters).order_by(dead_letters.c.id)
    if consumer is not None:
        query = query.where(dead_letters.c.consumer == consumer)
    async with db.transaction(read_only=True) as session:
        return list((await session.execute(query)).all())
