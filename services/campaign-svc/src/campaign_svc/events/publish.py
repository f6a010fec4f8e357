"""Events campaign-svc publishes (contracts in crm_common.contracts.campaign)."""

import uuid
from datetime import datetime

from crm_common.contracts.campaign import (
    CampaignActivated,
    CampaignArchived,
    CampaignCompleted,
    CampaignMemberConverted,
    CampaignMemberRepointed,
    CampaignPurged,
    CampaignRestored,
    CampaignTargetAdded,
)
from crm_common.events.envelope import CloudEvent, event_from

from campaign_svc.models import Campaign

SERVICE = "campaign"


def _state(cls, campaign: Campaign) -> CloudEvent:
    payload = cls(
        campaign_id=campaign.id,
        name=campaign.name,
        type=campaign.type,
        status=campaign.status,
        start_date=campaign.start_date,
        end_date=campaign.end_date,
    )
    return event_from(payload, service=SERVICE, subject=campaign.id, sequence=campaign.version)


def campaign_activated(campaign: Campaign) -> CloudEvent:
    return _state(CampaignActivated, campaign)


def campaign_completed(campaign: Campaign) -> CloudEvent:
    return _state(CampaignCompleted, campaign)


def target_added(campaign: Campaign, customer_id: uuid.UUID) -> CloudEvent:
    payload = CampaignTargetAdded(
        campaign_id=campaign.id, campaign_name=campaign.name, customer_id=customer_id
    )
    return event_from(payload, service=SERVICE, subject=campaign.id)


def member_converted(
    campaign_id: uuid.UUID, campaign_name: str, customer_id: uuid.UUID, opportunity_id: uuid.UUID
) -> CloudEvent:
    payload = CampaignMemberConverted(
        campaign_id=campaign_id,
        campaign_name=campaign_name,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
    )
    return event_from(payload, service=SERVICE, subject=campaign_id)


def member_repointed(campaign_id: uuid.UUID, old: uuid.UUID, survivor: uuid.UUID) -> CloudEvent:
    payload = CampaignMemberRepointed(campaign_id=campaign_id, from_customer_id=old, customer_id=survivor)
    return event_from(payload, service=SERVICE, subject=campaign_id)


def campaign_archived(campaign: Campaign, *, by: uuid.UUID) -> CloudEvent:
    payload = CampaignArchived(
        campaign_id=campaign.id, name=campaign.name, archived_by=by, archived_at=campaign.archived_at
    )
    return event_from(payload, service=SERVICE, subject=campaign.id, sequence=campaign.version)


def campaign_restored(campaign: Campaign, *, by: uuid.UUID) -> CloudEvent:
    payload = CampaignRestored(
        campaign_id=campaign.id, name=campaign.name, restored_by=by, restored_at=campaign.updated_at
    )
    return event_from(payload, service=SERVICE, subject=campaign.id, sequence=campaign.version)


def campaign_purged(campaign: Campaign, *, at: datetime) -> CloudEvent:
    payload = CampaignPurged(
        campaign_id=campaign.id, name=campaign.name, archived_at=campaign.archived_at, purged_at=at
    )
    return event_from(payload, service=SERVICE, subject=campaign.id, sequence=campaign.version + 1)
