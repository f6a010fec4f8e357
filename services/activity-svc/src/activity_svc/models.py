"""Activity tables (the seed's Activity and ActivityParticipant), no schema name baked in."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from crm_common.models import Field, SQLModel, id_field, json_field, new_registry, timestamp_field

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


class ActivityPriority(StrEnum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"
    URGENT = "URGENT"


class Activity(Base, table=True):
    __tablename__ = "activities"
    __table_args__ = (sa.Index("ix_activities_customer_start", "customer_id", "start_date"),)

    id: uuid.UUID = id_field()
    type: str = Field(sa_type=sa.String(16), nullable=False, index=True)
    subject: str = Field(sa_type=sa.String(300), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    customer_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    opportunity_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    ticket_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    start_date: datetime = timestamp_field(index=True)
    end_date: datetime | None = timestamp_field(nullable=True)
    duration: int | None = None
    is_all_day: bool = Field(default=False, nullable=False)
    status: str = Field(default=ActivityStatus.PLANNED, sa_type=sa.String(16), nullable=False, index=True)
    priority: str = Field(default=ActivityPriority.NORMAL, sa_type=sa.String(16), nullable=False)
    owner_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
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
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = timestamp_field()
    version: int = Field(default=1, nullable=False)


class ActivityParticipant(Base, table=True):
    __tablename__ = "activity_participants"

    activity_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="activities.id", ondelete="CASCADE", primary_key=True
    )
    user_id: uuid.UUID = Field(sa_type=sa.Uuid(), primary_key=True, index=True)
