"""Events published by campaign-svc."""

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
from crm_common.contracts.enums import CampaignStatus, CampaignType


class CampaignEvent(EventData):
    campaign_id: uuid.UUID
    name: str
    type: CampaignType
    status: CampaignStatus
    start_date: datetime | None = None
    end_date: datetime | None = None


class CampaignActivated(CampaignEvent):
    event_type: ClassVar[str] = "campaign.activated"


class CampaignCompleted(CampaignEvent):
    event_type: ClassVar[str] = "campaign.completed"


class CampaignTargetAdded(EventData):
    """A customer became a member (target) of a campaign."""

    event_type: ClassVar[str] = "campaign.target_added"

    campaign_id: uuid.UUID
    campaign_name: str
    customer_id: uuid.UUID


class CampaignMemberConverted(EventData):
    """A campaign member's opportunity was won inside the attribution window."""

    event_type: ClassVar[str] = "campaign.member_converted"

    campaign_id: uuid.UUID
    campaign_name: str
    customer_id: uuid.UUID
    opportunity_id: uuid.UUID


class CampaignMemberRepointed(RepointedByMerge):
    """The merged-away customer's membership of a campaign (its steps, interactions, leads and
    conversions) now belongs to the survivor; where both were members, the two rows became one."""

    event_type: ClassVar[str] = "campaign.member_repointed"

    campaign_id: uuid.UUID


class CampaignArchived(RecordArchived):
    """The campaign was archived: hidden from lists, restorable until purged (docs/api-guide.md, Archive)."""

    event_type: ClassVar[str] = "campaign.archived"

    campaign_id: uuid.UUID
    name: str


class CampaignRestored(RecordRestored):
    event_type: ClassVar[str] = "campaign.restored"

    campaign_id: uuid.UUID
    name: str


class CampaignPurged(RecordPurged):
    """An archived campaign was deleted after the archive retention."""

    event_type: ClassVar[str] = "campaign.purged"

    campaign_id: uuid.UUID
    name: str
