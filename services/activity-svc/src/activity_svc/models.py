"""Activity tables (the seed's Activity and ActivityParticipant) and the small read model of
customers activity-svc keeps from customer events; no schema name baked in."""

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
)

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class ActivityType(StrEnum):
    CALL = "CALL"
    EMAIL = "EMAIL"
    MEETING = "MEETING"
    TASK = "TASK"
    NOTE = "NOTE"
    SMS = "SMS"
    DEMO = "DEMO"


class ActivityStatus(StrEnum):
    PLANNED = "PLANNED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


OPEN_STATUSES = (ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS)


class ActivityPriority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


# Mapped as the ORM's version counter: every UPDATE carries `WHERE version = :seen`, so a write that
# raced past the If-Match check still fails (StaleDataError -> 412).
_version_column = sa.Column("version", sa.Integer(), nullable=False)


class Activity(Base, table=True):
    __tablename__ = "activities"
    __table_args__ = (
        external_id_index("activities"),
        sync_index("activities"),
        archived_index("activities"),
        # Timelines: newest first by startDate, id as the tie-breaker, per customer/opportunity/ticket.
        sa.Index("ix_activities_customer_timeline", "customer_id", "start_date", "id"),
        sa.Index("ix_activities_opportunity_timeline", "opportunity_id", "start_date", "id"),
        sa.Index("ix_activities_ticket_timeline", "ticket_id", "start_date", "id"),
        # ActivityAgenda: one owner's activities by date.
        sa.Index("ix_activities_owner_start", "owner_id", "start_date"),
    )
    __mapper_args__ = {"version_id_col": _version_column}

    id: uuid.UUID = id_field()
    type: ActivityType = Field(sa_type=sa.String(16), nullable=False, index=True)
    external_id: str | None = Field(default=None, sa_type=sa.String(255))
    subject: str = Field(sa_type=sa.String(300), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    customer_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    opportunity_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    ticket_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    start_date: datetime = timestamp_field(index=True)
    end_date: datetime | None = timestamp_field(nullable=True)
    duration: int | None = None
    is_all_day: bool = Field(default=False, nullable=False)
    status: ActivityStatus = Field(
        default=ActivityStatus.PLANNED, sa_type=sa.String(16), nullable=False, index=True
    )
    priority: ActivityPriority = Field(default=ActivityPriority.NORMAL, sa_type=sa.String(16), nullable=False)
    owner_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    outcome: str | None = Field(default=None, sa_type=sa.String(500))
    next_steps: str | None = Field(default=None, sa_type=sa.Text())
    follow_up_date: datetime | None = timestamp_field(nullable=True)
    attachments: list = json_field(list)
    links: list = json_field(list)
    custom_fields: dict = json_field(dict)
    # True for the notes activity-svc records from domain events; those are the system record.
    system: bool = Field(default=False, nullable=False)
    # The event a system note was recorded from: one note per event, never two.
    source_event_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), unique=True)
    # When the activity was completed (set by the transition to COMPLETED).
    completed_at: datetime | None = timestamp_field(nullable=True)
    # The activity whose completion created this follow-up TASK.
    follow_up_of_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    archived_at: datetime | None = archived_at_field()
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = updated_at_field()
    version: int = Field(default=1, sa_column=_version_column)


class ActivityParticipant(Base, table=True):
    __tablename__ = "activity_participants"

    activity_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="activities.id", ondelete="CASCADE", primary_key=True
    )
    user_id: uuid.UUID = Field(sa_type=sa.Uuid(), primary_key=True, index=True)
