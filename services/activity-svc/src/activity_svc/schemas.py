"""Request and response models of the activity API (camelCase JSON)."""

import uuid
from datetime import datetime

from crm_common.pagination import Page
from crm_common.schemas import ApiModel

from activity_svc.models import ActivityPriority, ActivityStatus, ActivityType


class ActivityRead(ApiModel):
    id: uuid.UUID
    type: ActivityType
    subject: str
    description: str | None
    customer_id: uuid.UUID | None
    opportunity_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    start_date: datetime
    end_date: datetime | None
    duration: int | None
    is_all_day: bool
    status: ActivityStatus
    priority: ActivityPriority
    owner_id: uuid.UUID
    outcome: str | None
    next_steps: str | None
    follow_up_date: datetime | None
    attachments: list
    links: list
    custom_fields: dict
    system: bool
    source_event_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


ActivityPage = Page[ActivityRead]
