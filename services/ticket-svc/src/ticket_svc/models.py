"""ticket-svc tables (the seed's Ticket and TicketCommunication, SLA policies, the breaches the
scheduler escalated, and the customers known from customer-svc's events). No schema name baked in."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from crm_common.archive import archived_at_field, archived_index
from crm_common.batch import external_id_index
from crm_common.changes import sync_index
from crm_common.models import (
    Field,
    SQLModel,
    id_field,
    json_field,
    new_registry,
    timestamp_field,
    updated_at_field,
    version_column,
)

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class TicketType(StrEnum):
    QUESTION = "QUESTION"
    PROBLEM = "PROBLEM"
    REQUEST = "REQUEST"
    INCIDENT = "INCIDENT"


class TicketPriority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class TicketStatus(StrEnum):
    NEW = "NEW"
    OPEN = "OPEN"
    PENDING = "PENDING"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"
    CLOSED = "CLOSED"


class PausableStatus(StrEnum):
    """Statuses a policy may pause the SLA clock in (RESOLVED and CLOSED always stop it)."""

    NEW = "NEW"
    OPEN = "OPEN"
    PENDING = "PENDING"
    ESCALATED = "ESCALATED"


OPEN_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ESCALATED)


class CustomerPriority(StrEnum):
    """customer-svc's Customer.priority, which a policy may be scoped to."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class CommunicationDirection(StrEnum):
    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class CommunicationChannel(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CHAT = "CHAT"
    PORTAL = "PORTAL"
    NOTE = "NOTE"


class BreachKind(StrEnum):
    FIRST_RESPONSE = "FIRST_RESPONSE"
    RESOLUTION = "RESOLUTION"


# Literal, so that Postgres can match a query's condition to the partial indexes below.
OPEN_SQL = "status IN ('NEW', 'OPEN', 'PENDING', 'ESCALATED')"
RESPONSE_PENDING_SQL = f"{OPEN_SQL} AND first_response_at IS NULL AND response_breached_at IS NULL"
RESOLUTION_PENDING_SQL = f"{OPEN_SQL} AND resolution_breached_at IS NULL"


def _pending_breach_index(name: str, column: str, condition: str) -> sa.Index:
    """Open tickets with a due time not yet breached: all the escalation scheduler looks at, so a
    pass stays cheap however many tickets breached in the past."""
    where = sa.text(f"{condition} AND {column} IS NOT NULL")
    return sa.Index(name, column, sqlite_where=where, postgresql_where=where)


_ticket_version = version_column()


class Ticket(Base, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        external_id_index("tickets"),
        sync_index("tickets"),
        archived_index("tickets"),
        sa.Index("ix_tickets_team_created", "team_id", "created_at"),
        _pending_breach_index(
            "ix_tickets_response_due_pending", "first_response_due_at", RESPONSE_PENDING_SQL
        ),
        _pending_breach_index(
            "ix_tickets_resolution_due_pending", "resolution_due_at", RESOLUTION_PENDING_SQL
        ),
    )
    # Racing writes fail on the version (412) instead of overwriting each other.
    __mapper_args__ = {"version_id_col": _ticket_version}

    id: uuid.UUID = id_field()
    ticket_number: str = Field(sa_type=sa.String(32), unique=True, nullable=False)
    external_id: str | None = Field(default=None, sa_type=sa.String(255))
    subject: str = Field(sa_type=sa.String(300), nullable=False)
    description: str = Field(sa_type=sa.Text(), nullable=False)
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
    category: str | None = Field(default=None, sa_type=sa.String(100))
    subcategory: str | None = Field(default=None, sa_type=sa.String(100))
    type: TicketType = Field(sa_type=sa.String(16), nullable=False)
    priority: TicketPriority = Field(
        default=TicketPriority.NORMAL, sa_type=sa.String(16), nullable=False, index=True
    )
    status: TicketStatus = Field(default=TicketStatus.NEW, sa_type=sa.String(16), nullable=False, index=True)
    resolution: str | None = Field(default=None, sa_type=sa.Text())
    assigned_to_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    first_response_at: datetime | None = timestamp_field(nullable=True)
    resolved_at: datetime | None = timestamp_field(nullable=True)
    closed_at: datetime | None = timestamp_field(nullable=True)
    due_date: datetime | None = timestamp_field(nullable=True)
    # Business minutes, SLA pauses excluded.
    response_time: int | None = None
    resolution_time: int | None = None
    escalation_level: int = Field(default=0, nullable=False)
    related_tickets: list = json_field(list)
    tags: list = json_field(list)
    satisfaction_rating: int | None = None
    satisfaction_comment: str | None = Field(default=None, sa_type=sa.Text())
    satisfaction_rated_at: datetime | None = timestamp_field(nullable=True)
    custom_fields: dict = json_field(dict)
    # SLA: the policy revision the ticket runs on, its due times and its clock (see service/sla.py).
    sla_policy_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    sla_revision_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), foreign_key="sla_revisions.id")
    first_response_due_at: datetime | None = timestamp_field(nullable=True)
    resolution_due_at: datetime | None = timestamp_field(nullable=True)
    sla_stopped_at: datetime | None = timestamp_field(nullable=True)
    sla_stopped_seconds: float = Field(default=0.0, nullable=False)
    # When a breach was first recorded (by the scheduler, or when a late response/resolution came).
    response_breached_at: datetime | None = timestamp_field(nullable=True)
    resolution_breached_at: datetime | None = timestamp_field(nullable=True)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    archived_at: datetime | None = archived_at_field()
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = updated_at_field()
    version: int = Field(default=1, sa_column=_ticket_version)


class TicketCommunication(Base, table=True):
    __tablename__ = "ticket_communications"
    __table_args__ = (sa.Index("ix_ticket_communications_ticket_created", "ticket_id", "created_at"),)

    id: uuid.UUID = id_field()
    ticket_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="tickets.id", ondelete="CASCADE")
    direction: CommunicationDirection = Field(sa_type=sa.String(16), nullable=False)
    channel: CommunicationChannel = Field(sa_type=sa.String(16), nullable=False)
    internal: bool = Field(default=False, nullable=False)
    # OUTBOUND and notes: the user who wrote it. INBOUND: the customer.
    author_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    customer_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    body: str = Field(sa_type=sa.Text(), nullable=False)
    attachments: list = json_field(list)
    recorded_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field()


class TicketNumberCounter(Base, table=True):
    """One row per year; incremented under a row lock, so numbers are consecutive and never reused."""

    __tablename__ = "ticket_number_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_value: int = Field(default=0, nullable=False)


_policy_version = version_column()


class SlaPolicy(Base, table=True):
    """An SLA policy as it is now. Every change writes a new immutable revision; tickets keep the
    revision they were created under."""

    __tablename__ = "sla_policies"
    __mapper_args__ = {"version_id_col": _policy_version}

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(200), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    is_active: bool = Field(default=True, nullable=False)
    # Scope: a policy applies to tickets of this team / for customers of this priority (None = any).
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    customer_priority: CustomerPriority | None = Field(default=None, sa_type=sa.String(16))
    # [{"priority", "firstResponseMinutes", "resolutionMinutes"}]
    targets: list = json_field(list)
    time_zone: str = Field(sa_type=sa.String(64), nullable=False)
    # [{"day": "MON", "start": "09:00", "end": "17:00"}]
    business_hours: list = json_field(list)
    # ["2026-12-25", ...] local dates
    holidays: list = json_field(list)
    pause_statuses: list = json_field(list)
    revision_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=1, sa_column=_policy_version)


class SlaRevision(Base, table=True):
    """An immutable snapshot of a policy's targets, calendar and pause statuses."""

    __tablename__ = "sla_revisions"

    id: uuid.UUID = id_field()
    policy_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
    policy_version: int = Field(nullable=False)
    snapshot: dict = json_field(dict)
    created_at: datetime = timestamp_field()


class SlaBreach(Base, table=True):
    """One row per ticket and kind of breach, ever: the primary key is what makes the escalation
    scheduler escalate a breach once, however many instances run."""

    __tablename__ = "ticket_sla_breaches"

    ticket_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="tickets.id", ondelete="CASCADE", primary_key=True
    )
    kind: BreachKind = Field(sa_type=sa.String(16), primary_key=True)
    due_at: datetime = timestamp_field()
    detected_at: datetime = timestamp_field()
    escalated: bool = Field(default=False, nullable=False)
    escalation_level: int | None = None
