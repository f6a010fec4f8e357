"""Request and response models (camelCase JSON)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from crm_common.pagination import Page
from crm_common.schemas import ApiModel, StrictApiModel
from pydantic import AwareDatetime, Field, StringConstraints

from webhook_svc.models import DeliveryState

Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
EventTypes = Annotated[
    list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]],
    Field(
        min_length=1,
        max_length=100,
        description="Routing keys or patterns: `customer.*`, `opportunity.won`, `*.created`, `*` (all).",
        examples=[["customer.*", "opportunity.won"]],
    ),
]
Filter = Annotated[
    dict[str, Any] | None,
    Field(
        description="Optional: {dotted path in the CloudEvent: value or list of values}; every entry must "
        'match, e.g. `{"data.status": ["CUSTOMER"]}`.',
        examples=[{"data.status": ["CUSTOMER", "LEAD"]}],
    ),
]


class WebhookCreateRequest(StrictApiModel):
    url: Url = Field(description="Where events are POSTed: https (or http) on a public address.")
    event_types: EventTypes
    filter: Filter = None
    description: str | None = Field(default=None, max_length=500)
    active: bool = True
    ordered_by_aggregate: bool = Field(
        default=False,
        description="Deliver each aggregate's events in order: a delivery about a record (the CloudEvent "
        "`subject`) is not attempted while an earlier one about the same record is still pending or "
        "retrying. A failing record holds back only its own later events.",
    )


class WebhookUpdateRequest(StrictApiModel):
    """Field edits; send `version` or If-Match. `active: true` re-enables a disabled subscription."""

    url: Url | None = None
    event_types: EventTypes | None = None
    filter: Filter = None
    description: str | None = Field(default=None, max_length=500)
    active: bool | None = None
    ordered_by_aggregate: bool | None = None
    version: int | None = None


class WebhookHealth(ApiModel):
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None


class WebhookRead(ApiModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    filter: dict[str, Any] | None
    active: bool
    ordered_by_aggregate: bool = Field(
        description="Whether each record's events are delivered in order (see docs/webhooks.md)."
    )
    disabled_reason: str | None = Field(
        description="Why it is inactive: `DISABLED_BY_USER`, or `FAILURE_STREAK` when the platform "
        "switched it off after failing too long (a `webhook.disabled` event was published)."
    )
    disabled_at: datetime | None
    health: WebhookHealth
    previous_secret_expires_at: datetime | None = Field(
        description="Until then, deliveries are signed with the previous secret as well."
    )
    created_by: uuid.UUID
    record_scopes: dict[str, str] | None = Field(
        description="What the creator could read when subscribing, per data context (`all`, `team`, `own`, "
        "`none`): events about records outside it are not sent (SKIPPED in the log). Narrowed further by "
        "what the creator may read now; null for subscriptions made before record scopes (all)."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookWithSecret(WebhookRead):
    secret: str = Field(
        description="`whsec_...`: the signing secret, shown only in this answer. Verify with any Standard "
        "Webhooks library."
    )


WebhookPage = Page[WebhookRead]


class WebhookRotateSecretRequest(StrictApiModel):
    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        description="How long the current secret keeps signing beside the new one (default 24 hours).",
    )


class AttemptRead(ApiModel):
    id: uuid.UUID
    attempted_at: datetime
    url: str
    status_code: int | None
    latency_ms: int | None
    response_excerpt: str | None = Field(description="The first kilobyte of the answer, at most.")
    error: str | None
    success: bool


class DeliveryRead(ApiModel):
    id: uuid.UUID
    webhook_id: uuid.UUID = Field(validation_alias="subscription_id")
    event_id: uuid.UUID
    event_type: str
    subject: str | None
    state: DeliveryState
    attempts: int = Field(description="Attempts in the current schedule (a replay starts a new one).")
    total_attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    event_time: datetime
    delivered_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    replayed_at: datetime | None
    skip_reason: str | None = Field(
        description="Why a SKIPPED delivery was not sent: `CREATOR_INACTIVE`, `NO_READ_PERMISSION` (the "
        "creator may not read that context), `OUT_OF_SCOPE` (the record is outside the creator's record "
        "scope), `RECORD_OWNER_UNKNOWN` (a scoped webhook gets no event whose record owner is unknown)."
    )


class DeliveryDetail(DeliveryRead):
    payload: dict[str, Any] = Field(description="The CloudEvent sent as the body.")
    attempt_log: list[AttemptRead]


DeliveryPage = Page[DeliveryRead]


class WebhookReplayRequest(StrictApiModel):
    since: AwareDatetime = Field(description="Deliveries created at or after this time.")
    until: AwareDatetime | None = Field(default=None, description="... and before this time (default now).")
    states: list[DeliveryState] = Field(
        default=[DeliveryState.FAILED],
        description="Which deliveries to send again (default: those that failed).",
    )


class ReplayResult(ApiModel):
    queued: int


class TestResult(ApiModel):
    delivery_id: uuid.UUID
    success: bool
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None


class EventTypeList(ApiModel):
    items: list[str]
