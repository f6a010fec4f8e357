"""Request and response models (camelCase JSON)."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from crm_common.changes import Changes
from crm_common.pagination import Page
from crm_common.schemas import ApiModel, CustomFields, Money, StrictApiModel
from pydantic import AwareDatetime, Field, StringConstraints

from campaign_svc.models import CampaignStatus, CampaignType, InteractionKind, MemberStatus

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class CampaignCreateRequest(StrictApiModel):
    name: Name
    description: str | None = Field(default=None, max_length=20000)
    type: CampaignType
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    currency: Currency = "USD"
    budget: Money | None = None
    actual_cost: Money = Decimal("0.00")
    target_audience: str | None = Field(default=None, max_length=500)
    expected_revenue: Money | None = None
    expected_leads: int | None = Field(default=None, ge=0)
    message: str | None = Field(default=None, max_length=20000)
    creative_assets: list[Any] = []
    channels: list[str] = []
    owner_id: uuid.UUID | None = Field(default=None, description="Defaults to the caller.")
    team_id: uuid.UUID | None = None
    custom_fields: CustomFields = {}


class CampaignUpdateRequest(StrictApiModel):
    """Field edits; the status changes through the action endpoints. Send `version` or If-Match."""

    name: Name | None = None
    description: str | None = Field(default=None, max_length=20000)
    type: CampaignType | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    currency: Currency | None = None
    budget: Money | None = None
    actual_cost: Money | None = None
    target_audience: str | None = Field(default=None, max_length=500)
    expected_revenue: Money | None = None
    expected_leads: int | None = Field(default=None, ge=0)
    message: str | None = Field(default=None, max_length=20000)
    creative_assets: list[Any] | None = None
    channels: list[str] | None = None
    owner_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    custom_fields: CustomFields | None = None
    version: int | None = None


class CampaignRead(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None
    type: CampaignType
    status: CampaignStatus
    start_date: datetime | None
    end_date: datetime | None
    currency: str
    budget: Decimal | None
    actual_cost: Decimal
    target_audience: str | None
    expected_revenue: Decimal | None
    expected_leads: int | None
    message: str | None
    creative_assets: list[Any]
    channels: list[Any]
    owner_id: uuid.UUID
    team_id: uuid.UUID | None
    custom_fields: dict[str, Any]
    target_count: int
    sent_count: int
    delivered_count: int
    bounced_count: int
    open_count: int
    click_count: int
    response_count: int
    unsubscribed_count: int
    conversion_count: int
    activated_at: datetime | None
    completed_at: datetime | None
    created_by_id: uuid.UUID | None
    archived_at: datetime | None = Field(
        default=None, description="Set while archived: hidden from lists, purged after the retention."
    )
    created_at: datetime
    updated_at: datetime
    version: int


CampaignPage = Page[CampaignRead]
CampaignChanges = Changes[CampaignRead]


class CampaignTransitionRequest(StrictApiModel):
    version: int | None = None


class TargetAddRequest(StrictApiModel):
    customer_ids: list[uuid.UUID] = Field(min_length=1)


class TargetAddFromSegmentRequest(StrictApiModel):
    segment_id: uuid.UUID


class TargetRefused(ApiModel):
    customer_id: uuid.UUID
    code: str
    message: str


class TargetsAddResult(ApiModel):
    added: list[uuid.UUID]
    already_targets: list[uuid.UUID]
    refused: list[TargetRefused]
    target_count: int


class TargetRead(ApiModel):
    customer_id: uuid.UUID
    customer_name: str | None = None
    status: MemberStatus
    added_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    bounced_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    responded_at: datetime | None
    unsubscribed_at: datetime | None
    converted_at: datetime | None
    last_interaction_at: datetime | None


TargetPage = Page[TargetRead]


class InteractionInput(StrictApiModel):
    customer_id: uuid.UUID
    kind: InteractionKind
    occurred_at: AwareDatetime
    external_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class InteractionRecordRequest(StrictApiModel):
    interactions: list[InteractionInput] = Field(min_length=1)


class InteractionResult(ApiModel):
    received: int
    recorded: int
    duplicates: int
    status_changes: int
    campaign: CampaignRead


class FunnelStep(ApiModel):
    count: int
    rate: float | None = Field(description="Share of the previous step's base (see the guide).")


class CurrencyAmount(ApiModel):
    currency: str
    amount: Decimal


class CampaignMetrics(ApiModel):
    campaign_id: uuid.UUID
    attribution_model: str
    attribution_window_days: int
    targets: int
    sent: int
    delivered: FunnelStep
    bounced: FunnelStep
    opened: FunnelStep
    clicked: FunnelStep
    responded: FunnelStep
    unsubscribed: FunnelStep
    converted: FunnelStep
    leads: int
    expected_leads: int | None
    leads_vs_expected: float | None
    currency: str
    actual_cost: Decimal
    budget: Decimal | None
    cost_per_lead: Decimal | None
    attributed_revenue: list[CurrencyAmount]
    attributed_conversions: int
    roi: float | None = Field(description="(revenue - actualCost) / actualCost in the campaign's currency.")
    expected_revenue: Decimal | None
    revenue_vs_expected: float | None
