"""webhook-svc tables: subscriptions, the deliveries owed to them (a durable queue, like an outbox)
and the log of every attempt."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from crm_common.models import (
    Field,
    JSONType,
    SQLModel,
    id_field,
    json_field,
    new_registry,
    timestamp_field,
    updated_at_field,
)

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class DeliveryState(StrEnum):
    PENDING = "PENDING"  # due now or at next_attempt_at
    DELIVERED = "DELIVERED"  # a 2xx answer
    FAILED = "FAILED"  # every attempt of the schedule failed (a replay queues it again)
    # Never sent: the subscription's creator may not read the record (see `skip_reason`).
    SKIPPED = "SKIPPED"


_subscription_version = sa.Column("version", sa.Integer(), nullable=False)


class Subscription(Base, table=True):
    __tablename__ = "webhook_subscriptions"
    __mapper_args__ = {"version_id_col": _subscription_version}

    id: uuid.UUID = id_field()
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=500)
    # Routing keys or patterns: `customer.*`, `opportunity.won`, `*` (all).
    event_types: list[str] = json_field(list)
    # {dotted path in the CloudEvent: value or list of values}, all must match; null = every event.
    filter: dict | None = Field(default=None, sa_type=JSONType, nullable=True)
    active: bool = True
    # Per-aggregate ordering: a delivery waits while an earlier one of the same subject is PENDING.
    ordered_by_aggregate: bool = False
    secret: str = Field(max_length=200)
    # After a rotation the previous secret signs too, until it expires.
    previous_secret: str | None = Field(default=None, max_length=200)
    previous_secret_expires_at: datetime | None = timestamp_field(nullable=True)
    created_by: uuid.UUID = Field(sa_type=sa.Uuid())
    # The creator's read scope per data context when they subscribed (`all`, `team`, `own`, `none`);
    # null for subscriptions made before record scopes (treated as `all`). Narrowed further by what
    # the creator may read now (UserAccess). See service/record_scopes.py.
    record_scopes: dict | None = Field(default=None, sa_type=JSONType, nullable=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=1, sa_column=_subscription_version)
    # Health: attempts failed in a row since the last success, and since when.
    consecutive_failures: int = 0
    failing_since: datetime | None = timestamp_field(nullable=True)
    last_success_at: datetime | None = timestamp_field(nullable=True)
    last_failure_at: datetime | None = timestamp_field(nullable=True)
    # Why it is inactive: DISABLED_BY_USER, FAILURE_STREAK.
    disabled_reason: str | None = Field(default=None, max_length=32)
    disabled_at: datetime | None = timestamp_field(nullable=True)


class Delivery(Base, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # One delivery per subscription and event: a redelivered event queues nothing twice.
        sa.UniqueConstraint("subscription_id", "event_id"),
        sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        sa.Index("ix_webhook_deliveries_log", "subscription_id", "created_at"),
        sa.Index("ix_webhook_deliveries_aggregate", "subscription_id", "subject", "state"),
    )

    id: uuid.UUID = id_field()
    subscription_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False
        )
    )
    event_id: uuid.UUID = Field(sa_type=sa.Uuid())
    event_type: str = Field(max_length=200)
    subject: str | None = Field(default=None, max_length=200)
    # The CloudEvent as published, sent as the request body.
    payload: dict = json_field()
    # When the event happened (its producer's commit), for commit-to-delivery latency.
    event_time: datetime = timestamp_field()
    state: DeliveryState = Field(default=DeliveryState.PENDING, sa_type=sa.String(16))
    # Attempts made in the current schedule (a replay starts a new one) and in all.
    attempts: int = 0
    total_attempts: int = 0
    next_attempt_at: datetime | None = timestamp_field(nullable=True)
    # Claimed by a sender until then.
    locked_until: datetime | None = timestamp_field(nullable=True)
    created_at: datetime = timestamp_field()
    delivered_at: datetime | None = timestamp_field(nullable=True)
    last_attempt_at: datetime | None = timestamp_field(nullable=True)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    replayed_at: datetime | None = timestamp_field(nullable=True)
    # Why a SKIPPED delivery was not sent: CREATOR_INACTIVE, NO_READ_PERMISSION, OUT_OF_SCOPE,
    # RECORD_OWNER_UNKNOWN.
    skip_reason: str | None = Field(default=None, max_length=64)


class Attempt(Base, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)

    id: uuid.UUID = id_field()
    delivery_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False
        )
    )
    attempted_at: datetime = timestamp_field()
    url: str = Field(max_length=2000)
    status_code: int | None = None
    latency_ms: int | None = None
    # The first kilobyte of the answer (never more is read).
    response_excerpt: str | None = Field(default=None, max_length=1024)
    error: str | None = Field(default=None, max_length=1000)
    success: bool = False


class RecordOwner(Base, table=True):
    """Who owns a record, as the last event that said so told (customer.created/assigned,
    opportunity.*, activity.completed, ticket.created, invoice.created): most events do not carry
    the owner, and a scoped subscription needs it to decide."""

    __tablename__ = "webhook_record_owners"

    kind: str = Field(primary_key=True, max_length=32)  # customer, opportunity, invoice, ...
    record_id: uuid.UUID = Field(primary_key=True, sa_type=sa.Uuid())
    owner_ids: list[str] = json_field(list)
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), nullable=True)
    version: int = 0  # the event's sequence (the record's version); an older one changes nothing
    updated_at: datetime = timestamp_field()


class UserAccess(Base, table=True):
    """What each user may read now, from the gateway's user.* events (`readScopes`)."""

    __tablename__ = "webhook_user_access"

    user_id: uuid.UUID = Field(primary_key=True, sa_type=sa.Uuid())
    read_scopes: dict | None = Field(default=None, sa_type=JSONType, nullable=True)
    is_active: bool = True
    version: int = 0
    updated_at: datetime = timestamp_field()
