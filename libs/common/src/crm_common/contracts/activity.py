"""Events published by activity-svc."""

import uuid
from datetime import datetime
from typing import ClassVar

from crm_common.contracts.base import EventData, RepointedByMerge
from crm_common.contracts.enums import ActivityType


class ActivityCompleted(EventData):
    event_type: ClassVar[str] = "activity.completed"

    activity_id: uuid.UUID
    type: ActivityType
    subject: str
    owner_id: uuid.UUID
    completed_at: datetime
    customer_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    outcome: str | None = None


class ActivityRepointed(RepointedByMerge):
    event_type: ClassVar[str] = "activity.repointed"

    activity_id: uuid.UUID
