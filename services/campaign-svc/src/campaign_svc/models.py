"""campaign-svc tables: campaigns, their targets (members), interactions, leads, conversions, and the
local read model of customers (from customer.* events)."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from crm_common.archive import archived_at_field, archived_index
from crm_common.changes import sync_index
from crm_common.models import (
    Field,
    SQLModel,
    id_field,
    json_field,
    money_field,
    new_registry,
    timestamp_field,
    updated_at_field,
)

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class CampaignType(StrEnum):
    EMAIL = "EMAIL"
    SMS = "SMS"
    SOCIAL = "SOCIAL"
    WEBINAR = "WEBINAR"
    TRADE_SHOW = "TRADE_SHOW"
    DIRECT_MAIL = "DIRECT_MAIL"
    OTHER = "OTHER"


class CampaignStatus(StrEnum):
    PLANNING = "PLANNING"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class MemberStatus(StrEnum):
    TARGETED = "TARGETED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    BOUNCED = "BOUNCED"
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    RESPONDED = "RESPONDED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    CONVERTED = "CONVERTED"


class InteractionKind(StrEnum):
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    BOUNCED = "BOUNCED"
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    RESPONDED = "RESPONDED"
    UNSUBSCRIBED = "UNSUBSCRIBED"


_campaign_version = sa.Column("version", sa.Integer(), nullable=False)


class Campaign(Base, table=True):
    __tablename__ = "campaigns"
    __table_args__ = (
        sa.Index("ix_campaigns_status", "status"),
        sa.Index("ix_campaigns_owner_id", "owner_id"),
        sync_index("campaigns"),
        archived_index("campaigns"),
    )
    __mapper_args__ = {"version_id_col": _campaign_version}

    id: uuid.UUID = id_field()
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, sa_type=sa.Text())
    # Enums stored as their names in VARCHAR(20) columns (not database enums: a new value needs no migration).
    type: CampaignType = Field(sa_type=sa.String(20))
    status: CampaignStatus = Field(default=CampaignStatus.PLANNING, sa_type=sa.String(20))
    start_date: datetime | None = timestamp_field(nullable=True)
    end_date: datetime | None = timestamp_field(nullable=True)
    currency: str = Field(default="USD", max_length=3)
    budget: Decimal | None = money_field()
    actual_cost: Decimal = money_field(Decimal("0.00"), nullable=False)
    target_audience: str | None = Field(default=None, max_length=500)
    expected_revenue: Decimal | None = money_field()
    expected_leads: int | None = None
    message: str | None = Field(default=None, sa_type=sa.Text())
    creative_assets: list = json_field(list)
    channels: list = json_field(list)
    owner_id: uuid.UUID = Field(sa_type=sa.Uuid())
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    custom_fields: dict = json_field(dict)
    # Derived from the members' step timestamps (service/tracking.py recount), never incremented.
    target_count: int = 0
    sent_count: int = 0
    delivered_count: int = 0
    bounced_count: int = 0
    open_count: int = 0
    click_count: int = 0
    response_count: int = 0
    unsubscribed_count: int = 0
    conversion_count: int = 0
    activated_at: datetime | None = timestamp_field(nullable=True)
    completed_at: datetime | None = timestamp_field(nullable=True)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    archived_at: datetime | None = archived_at_field()
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=1, sa_column=_campaign_version)


class CampaignTarget(Base, table=True):
    """A member of a campaign. Each funnel step keeps the first time it was reached; the status is the
    furthest step (it never moves back)."""

    __tablename__ = "campaign_targets"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_targets_member"),
        sa.Index("ix_campaign_targets_customer_id", "customer_id"),
        sa.Index("ix_campaign_targets_campaign_status", "campaign_id", "status"),
    )

    id: uuid.UUID = id_field()
    campaign_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="campaigns.id", ondelete="CASCADE")
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid())
    status: MemberStatus = Field(default=MemberStatus.TARGETED, sa_type=sa.String(20))
    added_at: datetime = timestamp_field()
    sent_at: datetime | None = timestamp_field(nullable=True)
    delivered_at: datetime | None = timestamp_field(nullable=True)
    bounced_at: datetime | None = timestamp_field(nullable=True)
    opened_at: datetime | None = timestamp_field(nullable=True)
    clicked_at: datetime | None = timestamp_field(nullable=True)
    responded_at: datetime | None = timestamp_field(nullable=True)
    unsubscribed_at: datetime | None = timestamp_field(nullable=True)
    converted_at: datetime | None = timestamp_field(nullable=True)
    last_interaction_at: datetime | None = timestamp_field(nullable=True)
    updated_at: datetime = updated_at_field()


class CampaignInteraction(Base, table=True):
    """One tracked interaction, kept for dedupe by the sending platform's external id."""

    __tablename__ = "campaign_interactions"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "external_id", name="uq_campaign_interactions_external"),
        sa.Index("ix_campaign_interactions_customer_id", "customer_id"),
    )

    id: uuid.UUID = id_field()
    campaign_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="campaigns.id", ondelete="CASCADE")
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid())
    kind: InteractionKind = Field(sa_type=sa.String(20))
    occurred_at: datetime = timestamp_field()
    external_id: str = Field(max_length=200)
    recorded_at: datetime = timestamp_field()


class CampaignLead(Base, table=True):
    """A customer created with this campaign as its source (customer.created sourceCampaignId)."""

    __tablename__ = "campaign_leads"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "customer_id", name="uq_campaign_leads_member"),
        sa.Index("ix_campaign_leads_customer_id", "customer_id"),
    )

    id: uuid.UUID = id_field()
    campaign_id: uuid.UUID = Field(sa_type=sa.Uuid())
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid())
    created_at: datetime = timestamp_field()


class CampaignConversion(Base, table=True):
    """A won opportunity of a member or lead inside the campaign's attribution window. Every
    qualifying campaign gets a row; the attribution model picks which one is credited with the
    revenue (first touch: the earliest first touch; last touch: the latest touch before the win)."""

    __tablename__ = "campaign_conversions"
    __table_args__ = (
        sa.UniqueConstraint("opportunity_id", "campaign_id", name="uq_campaign_conversions_opp"),
        sa.Index("ix_campaign_conversions_campaign_id", "campaign_id"),
        sa.Index("ix_campaign_conversions_customer_id", "customer_id"),
    )

    id: uuid.UUID = id_field()
    opportunity_id: uuid.UUID = Field(sa_type=sa.Uuid())
    campaign_id: uuid.UUID = Field(sa_type=sa.Uuid())
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid())
    amount: Decimal = money_field(Decimal("0.00"), nullable=False)
    currency: str = Field(max_length=3)
    won_at: datetime = timestamp_field()
    first_touch_at: datetime = timestamp_field()
    last_touch_at: datetime = timestamp_field()
    sequence: int = 0
