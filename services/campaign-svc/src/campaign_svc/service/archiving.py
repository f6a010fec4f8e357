"""Archive, restore and purge campaigns (the rules are crm_common.archive's)."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_common import archive
from crm_common.db import Database
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.record_scope import ScopedCaller
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from campaign_svc.events import publish as events
from campaign_svc.models import (
    Campaign,
    CampaignConversion,
    CampaignInteraction,
    CampaignLead,
    CampaignTarget,
)
from campaign_svc.service.campaigns import get_campaign


async def set_archived(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    archived: bool,
    if_match: str | None,
    caller: ScopedCaller,
) -> Campaign:
    """Archive (or restore) a campaign in the caller's write scope; a repeat changes nothing."""
    campaign = await get_campaign(
        session, campaign_id, for_update=True, caller=caller, write=True, archived_ok=True
    )
    if not await archive.set_archived(session, campaign, archived, if_match=if_match):
        return campaign
    event = events.campaign_archived if archived else events.campaign_restored
    await add_events(session, event(campaign, by=caller.id))
    return await get_campaign(session, campaign.id)


async def _on_purge(session: AsyncSession, campaigns: Sequence[Campaign]) -> None:
    # Its members, interactions, leads and conversions go with it, as when a campaign is deleted.
    ids = [c.id for c in campaigns]
    for table in (CampaignInteraction, CampaignTarget, CampaignLead, CampaignConversion):
        await session.execute(delete(table).where(table.campaign_id.in_(ids)))
    now = utcnow()
    await add_events(session, *(events.campaign_purged(c, at=now) for c in campaigns))


async def purge(db: Database, retention: timedelta, *, now: datetime | None = None) -> int:
    """Delete campaigns archived longer than `retention` (the service's periodic task)."""
    return await archive.purge_archived(
        db, Campaign, resource="campaign", retention=retention, on_purge=_on_purge, now=now
    )
