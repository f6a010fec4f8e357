"""Events published by activity-svc."""

import uuid
from datetime import datetime
from typing import ClassVar

from crm_common.contracts.base import (
    EventData,
    RecordArchived,
    RecordPurged,
    RecordRestored,
    RepointedByMerge,
)
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


class ActivityArchived(RecordArchived):
    """The activity was archived: hidden from lists, restorable until purged (docs/api-guide.md, Archive)."""

    event_type: ClassVar[str] = "activity.archived"

    activity_id: uuid.UUID
    customer_id: uuid.UUID | None = None


class ActivityRestored(RecordRestored):
    event_type: ClassVar[str] = "activity.restored"

    activity_id: uuid.UUID
    customer_id: uuid.UUID | None = None


class ActivityPurged(RecordPurged):
    """An archived activity was deleted after the archive retention."""

    event_type: ClassVar[str] = "activity.purged"

    activity_id: uuid.UUID
    customer_id: uuid.UUID | None = None
