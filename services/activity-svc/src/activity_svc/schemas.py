"""Request and response models of the activity API (camelCase JSON)."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from crm_common.batch import BatchInput, BatchResult, ExternalId
from crm_common.changes import Changes
from crm_common.pagination import Page
from crm_common.schemas import ApiModel, CustomFields, StrictApiModel
from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from activity_svc.models import ActivityPriority, ActivityStatus, ActivityType

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(max_length=20000)]
Outcome = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Minutes = Annotated[int, Field(ge=0, le=525600, description="Minutes (at most a year).")]
Participants = Annotated[
    list[uuid.UUID], Field(max_length=100, description="User ids; each must be a known, active user.")
]
JsonList = Annotated[list[Any], Field(max_length=100)]


class ActivityCreateRequest(StrictApiModel):
    type: ActivityType
    subject: Subject
    external_id: ExternalId | None = None
    description: LongText | None = None
    customer_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    start_date: AwareDatetime
    end_date: AwareDatetime | None = Field(default=None, description="Not before startDate.")
    duration: Minutes | None = Field(
        default=None,
        description="Derived from startDate and endDate when both are given (a different value is a 422); "
        "with startDate only, endDate is derived from it.",
    )
    is_all_day: bool = False
    status: ActivityStatus = Field(
        default=ActivityStatus.PLANNED,
        description="PLANNED, IN_PROGRESS or COMPLETED (to log something already done); not CANCELLED.",
    )
    priority: ActivityPriority = ActivityPriority.NORMAL
    owner_id: uuid.UUID | None = Field(
        default=None, description="Defaults to the caller; a known, active user."
    )
    participant_ids: Participants = []
    outcome: Outcome | None = None
    next_steps: LongText | None = None
    follow_up_date: AwareDatetime | None = None
    attachments: JsonList = []
    links: JsonList = []
    custom_fields: CustomFields = {}


# Fields that may be left out of a PATCH but never set to null.
NOT_NULLABLE = (
    "type",
    "subject",
    "start_date",
    "is_all_day",
    "status",
    "priority",
    "owner_id",
    "participant_ids",
    "attachments",
    "links",
    "custom_fields",
)


class ActivityUpdateRequest(StrictApiModel):
    """Only the fields sent change; `null` clears an optional field. `status` follows the allowed
    transitions (moving to COMPLETED here is the same as `POST .../complete`)."""

    type: ActivityType | None = None
    subject: Subject | None = None
    external_id: ExternalId | None = None
    description: LongText | None = None
    customer_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    duration: Minutes | None = None
    is_all_day: bool | None = None
    status: ActivityStatus | None = None
    priority: ActivityPriority | None = None
    owner_id: uuid.UUID | None = None
    participant_ids: Participants | None = None
    outcome: Outcome | None = None
    next_steps: LongText | None = None
    follow_up_date: AwareDatetime | None = None
    attachments: JsonList | None = None
    links: JsonList | None = None
    custom_fields: CustomFields | None = None
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")

    @model_validator(mode="after")
    def _no_null_for_required(self):
        nulled = [f for f in NOT_NULLABLE if f in self.model_fields_set and getattr(self, f) is None]
        if nulled:
            raise ValueError(f"cannot be null: {', '.join(nulled)}")
        return self


class ActivityCompleteRequest(StrictApiModel):
    outcome: Outcome | None = None
    next_steps: LongText | None = None
    follow_up_date: AwareDatetime | None = Field(
        default=None, description="When given (or already set on the activity), a follow-up TASK is created."
    )
    version: int | None = None


class ActivityCancelRequest(StrictApiModel):
    reason: Outcome | None = Field(default=None, description="Kept as the activity's outcome.")
    version: int | None = None


class ActivityParticipantRead(ApiModel):
    user_id: uuid.UUID
    name: str | None = Field(description="From the user directory; null when the user is not known yet.")


class ActivityRead(ApiModel):
    id: uuid.UUID
    type: ActivityType
    subject: str
    external_id: str | None = None
    description: str | None
    customer_id: uuid.UUID | None
    customer_name: str | None = None
    opportunity_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    start_date: datetime
    end_date: datetime | None
    duration: int | None
    is_all_day: bool
    status: ActivityStatus
    priority: ActivityPriority
    owner_id: uuid.UUID
    owner_name: str | None = None
    participants: list[ActivityParticipantRead] = []
    outcome: str | None
    next_steps: str | None
    follow_up_date: datetime | None
    attachments: list
    links: list
    custom_fields: dict
    system: bool
    source_event_id: uuid.UUID | None
    completed_at: datetime | None = None
    follow_up_of_id: uuid.UUID | None = None
    archived_at: datetime | None = Field(
        default=None, description="Set while archived: hidden from lists, purged after the retention."
    )
    created_at: datetime
    updated_at: datetime
    version: int


ActivityPage = Page[ActivityRead]
ActivityChanges = Changes[ActivityRead]


class ActivityBatchUpdate(ActivityUpdateRequest):
    """One item of `batch/update`: the activity's id and the fields to change."""

    id: uuid.UUID


class ActivityBatchCreateRequest(BatchInput[ActivityCreateRequest]):
    """The body of `batch/create` (and, for this resource, `batch/upsert`)."""


class ActivityBatchUpdateRequest(BatchInput[ActivityBatchUpdate]):
    """The body of `batch/update`."""


ActivityBatchResult = BatchResult[ActivityRead]


class ActivityCompletion(ApiModel):
    activity: ActivityRead
    follow_up: ActivityRead | None = Field(description="The follow-up TASK, when a followUpDate was given.")


class ActivityAgendaBucket(ApiModel):
    total: int
    items: list[ActivityRead]


class ActivityAgenda(ApiModel):
    time_zone: str
    at: datetime = Field(description="The instant the agenda was computed for (UTC).")
    today: date = Field(description="The caller's local date at `at`.")
    overdue: ActivityAgendaBucket = Field(description="Open, scheduled before today (local).")
    due_today: ActivityAgendaBucket
    upcoming: ActivityAgendaBucket = Field(description="Open, scheduled in the next `days` days after today.")


class ActivityFeedGroup(ApiModel):
    date: date
    items: list[ActivityRead]


class ActivityFeed(ApiModel):
    time_zone: str
    items: list[ActivityRead]
    groups: list[ActivityFeedGroup] = Field(
        description="With groupByDate=true: the same items grouped by local creation date, newest first."
    )
