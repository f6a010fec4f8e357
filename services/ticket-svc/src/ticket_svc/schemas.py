"""Request and response models of the ticket API (camelCase JSON)."""

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from crm_common.batch import BatchInput, BatchResult, ExternalId
from crm_common.changes import Changes
from crm_common.errors import refuse_nulls
from crm_common.pagination import Page
from crm_common.schemas import ApiModel, CustomFields, StrictApiModel
from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from ticket_svc.models import (
    CommunicationChannel,
    CommunicationDirection,
    CustomerPriority,
    PausableStatus,
    TicketPriority,
    TicketStatus,
    TicketType,
)

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
Version = Annotated[int, Field(ge=1, description="The version you read (alternative to If-Match).")]


# --- tickets --------------------------------------------------------------------------------------


class TicketCreateRequest(StrictApiModel):
    subject: Subject
    external_id: ExternalId | None = None
    description: LongText
    customer_id: uuid.UUID = Field(description="A customer known from customer-svc's events.")
    category: Short | None = None
    subcategory: Short | None = None
    type: TicketType
    priority: TicketPriority = TicketPriority.NORMAL
    assigned_to_id: uuid.UUID | None = Field(
        default=None, description="An active user; unassigned if absent."
    )
    team_id: uuid.UUID | None = None
    due_date: AwareDatetime | None = Field(
        default=None, description="A date promised to the customer; independent of the SLA due times."
    )
    related_tickets: Annotated[list[uuid.UUID], Field(max_length=50)] = []
    tags: Annotated[list[Tag], Field(max_length=50)] = []
    custom_fields: CustomFields = {}


class TicketUpdateRequest(StrictApiModel):
    """Field edits. Status changes, escalation and satisfaction are actions of their own."""

    subject: Subject | None = None
    external_id: ExternalId | None = None
    description: LongText | None = None
    category: Short | None = None
    subcategory: Short | None = None
    type: TicketType | None = None
    priority: TicketPriority | None = None
    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    due_date: AwareDatetime | None = None
    related_tickets: Annotated[list[uuid.UUID], Field(max_length=50)] | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
    custom_fields: CustomFields | None = None
    resolution: LongText | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _required_stay_set(self):
        refuse_nulls(
            self,
            ("subject", "description", "type", "priority", "related_tickets", "tags", "custom_fields"),
        )
        return self


class TicketRead(ApiModel):
    id: uuid.UUID
    ticket_number: str
    external_id: str | None = None
    subject: str
    description: str
    customer_id: uuid.UUID
    customer_number: str | None = None
    customer_name: str | None = None
    category: str | None
    subcategory: str | None
    type: TicketType
    priority: TicketPriority
    status: TicketStatus
    resolution: str | None
    assigned_to_id: uuid.UUID | None
    assigned_to_name: str | None = None
    team_id: uuid.UUID | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    due_date: datetime | None
    response_time: int | None = Field(description="Business minutes to the first response, pauses excluded.")
    resolution_time: int | None = Field(description="Business minutes to resolution, pauses excluded.")
    escalation_level: int
    related_tickets: list[uuid.UUID]
    tags: list[str]
    satisfaction_rating: int | None
    satisfaction_comment: str | None
    satisfaction_rated_at: datetime | None
    custom_fields: dict
    sla_policy_id: uuid.UUID | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_paused: bool = Field(description="The SLA clock is stopped (pause status, resolved or closed).")
    response_breached: bool
    resolution_breached: bool
    created_by_id: uuid.UUID | None
    archived_at: datetime | None = Field(
        default=None, description="Set while archived: hidden from lists, purged after the retention."
    )
    created_at: datetime
    updated_at: datetime
    version: int


TicketPage = Page[TicketRead]
TicketChanges = Changes[TicketRead]


class TicketBatchUpdate(TicketUpdateRequest):
    """One item of `batch/update`: the ticket's id and the fields to change."""

    id: uuid.UUID


class TicketBatchCreateRequest(BatchInput[TicketCreateRequest]):
    """The body of `batch/create` (and, for this resource, `batch/upsert`)."""


class TicketBatchUpdateRequest(BatchInput[TicketBatchUpdate]):
    """The body of `batch/update`."""


TicketBatchResult = BatchResult[TicketRead]


class TicketStatusChangeRequest(StrictApiModel):
    status: TicketStatus
    resolution: LongText | None = Field(
        default=None, description="Required to resolve, unless the ticket already has one."
    )
    reason: Reason | None = Field(default=None, description="Why (reopen, escalation).")
    version: Version | None = None


class TicketEscalateRequest(StrictApiModel):
    reason: Reason
    version: Version | None = None


class TicketSatisfactionRequest(StrictApiModel):
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] | None = None


# --- communications -------------------------------------------------------------------------------


class TicketAttachment(StrictApiModel):
    file_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    content_type: Annotated[str, StringConstraints(max_length=200)] | None = None
    size: Annotated[int, Field(ge=0)] | None = None
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None


class TicketAttachmentRead(ApiModel):
    file_name: str
    content_type: str | None = None
    size: int | None = None
    url: str | None = None


class TicketCommunicationCreateRequest(StrictApiModel):
    direction: CommunicationDirection
    channel: CommunicationChannel
    internal: bool = Field(default=False, description="An internal note, never shown to the customer.")
    body: Annotated[str, StringConstraints(min_length=1, max_length=100000)]
    attachments: Annotated[list[TicketAttachment], Field(max_length=20)] = []
    author_id: uuid.UUID | None = Field(
        default=None, description="OUTBOUND only: the user who wrote it; defaults to the caller."
    )


class TicketCommunicationRead(ApiModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    direction: CommunicationDirection
    channel: CommunicationChannel
    internal: bool
    author_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    body: str
    attachments: list[TicketAttachmentRead]
    recorded_by_id: uuid.UUID | None
    created_at: datetime


TicketCommunicationPage = Page[TicketCommunicationRead]


# --- SLA policies ---------------------------------------------------------------------------------

Day = Literal["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"]
HHMM = Annotated[str, StringConstraints(pattern=r"^\d{2}:\d{2}$")]
Minutes = Annotated[int, Field(ge=1, le=525600)]


class SlaBusinessHours(StrictApiModel):
    day: Day
    start: HHMM = Field(description="Local time HH:MM.")
    end: HHMM = Field(description='Local time HH:MM, after start; "24:00" is midnight.')


class SlaTarget(StrictApiModel):
    priority: TicketPriority
    first_response_minutes: Minutes
    resolution_minutes: Minutes


class SlaPolicyCreateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    is_active: bool = True
    team_id: uuid.UUID | None = Field(default=None, description="Only tickets of this team.")
    customer_priority: CustomerPriority | None = Field(
        default=None, description="Only tickets of customers with this priority."
    )
    targets: Annotated[list[SlaTarget], Field(min_length=1, max_length=4)]
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    business_hours: Annotated[list[SlaBusinessHours], Field(min_length=1, max_length=70)]
    holidays: Annotated[list[date], Field(max_length=1000)] = []
    pause_statuses: Annotated[list[PausableStatus], Field(max_length=4)] = [PausableStatus.PENDING]


class SlaPolicyUpdateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    is_active: bool | None = None
    team_id: uuid.UUID | None = None
    customer_priority: CustomerPriority | None = None
    targets: Annotated[list[SlaTarget], Field(min_length=1, max_length=4)] | None = None
    time_zone: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    business_hours: Annotated[list[SlaBusinessHours], Field(min_length=1, max_length=70)] | None = None
    holidays: Annotated[list[date], Field(max_length=1000)] | None = None
    pause_statuses: Annotated[list[PausableStatus], Field(max_length=4)] | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _required_stay_set(self):
        refuse_nulls(
            self,
            ("name", "is_active", "targets", "time_zone", "business_hours", "holidays", "pause_statuses"),
        )
        return self


class SlaPolicyRead(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None
    is_active: bool
    team_id: uuid.UUID | None
    customer_priority: CustomerPriority | None
    targets: list[SlaTarget]
    time_zone: str
    business_hours: list[SlaBusinessHours]
    holidays: list[date]
    pause_statuses: list[PausableStatus]
    revision_id: uuid.UUID
    created_by_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


SlaPolicyPage = Page[SlaPolicyRead]


# --- metrics --------------------------------------------------------------------------------------


class TicketDurationStats(ApiModel):
    count: int
    average_minutes: float | None
    p90_minutes: int | None = Field(description="Nearest-rank 90th percentile.")


class TicketSlaStats(ApiModel):
    with_sla: int = Field(description="Tickets that have SLA targets.")
    breached: int = Field(description="Of those, tickets with a response or resolution breach.")
    response_breached: int
    resolution_breached: int
    breach_rate: float | None = Field(description="breached / withSla, null when no ticket has an SLA.")


class TicketSatisfactionStats(ApiModel):
    count: int
    average: float | None
    distribution: dict[str, int] = Field(description='Ratings "1".."5" and how many tickets got each.')


class TicketMetrics(ApiModel):
    total: int
    by_status: dict[str, int]
    by_priority: dict[str, int]
    sla: TicketSlaStats
    first_response: TicketDurationStats
    resolution: TicketDurationStats
    satisfaction: TicketSatisfactionStats


class TicketMetricsGroup(TicketMetrics):
    key: str | None = Field(
        description="The team id or the period start (YYYY-MM-DD / YYYY-MM); null: no team."
    )
    team_name: str | None = None


class TicketMetricsReport(ApiModel):
    created_from: datetime | None
    created_to: datetime | None
    group_by: str | None
    generated_at: datetime
    overall: TicketMetrics
    groups: list[TicketMetricsGroup] = []
