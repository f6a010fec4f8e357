"""The outbox and inbox tables every service has in its own schema.

They live in their own MetaData; a service's Alembic env includes it in `target_metadata`, and its
first migration creates them with `create_event_tables()`.
"""

import sqlalchemy as sa
from alembic import op

from crm_common.models import UtcDateTime

metadata = sa.MetaData()

outbox = sa.Table(
    "event_outbox",
    metadata,
    # Insertion order: the relay publishes oldest first.
    sa.Column(
        "position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
    sa.Column("routing_key", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("published_at", UtcDateTime()),
    # PUBLISHED: confirmed by the broker. UNROUTED: the broker had no queue bound for it; kept for replay.
    # FAILED: the payload is not a CloudEvent (crm_common.events.relay): never published, kept to be seen.
    sa.Column("state", sa.String(16), nullable=False, server_default="PENDING"),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
)
sa.Index("ix_event_outbox_pending", outbox.c.state, outbox.c.position)

inbox = sa.Table(
    "event_inbox",
    metadata,
    sa.Column("consumer", sa.String(100), primary_key=True),
    sa.Column("event_id", sa.Uuid(), primary_key=True),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
)


def create_event_tables_v1() -> None:
    """For a service's first Alembic migration. A frozen snapshot, like any migration: a later
    change to the tables above gets its own `..._v2` step."""
    big_int = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "event_outbox",
        sa.Column("position", big_int, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("routing_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("state", sa.String(16), nullable=False, server_default="PENDING"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index("ix_event_outbox_pending", "event_outbox", ["state", "position"])
    op.create_table(
        "event_inbox",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_event_tables_v1() -> None:
    op.drop_table("event_inbox")
    op.drop_index("ix_event_outbox_pending", table_name="event_outbox")
    op.drop_table("event_outbox")
