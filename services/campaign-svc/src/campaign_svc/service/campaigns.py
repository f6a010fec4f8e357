"""Campaigns: create, read, update, delete, list, status transitions."""

import uuid
from datetime import UTC, datetime

from crm_common import changes, directory
from crm_common.archive import ArchivedMode, archived_clause, check_not_archived
from crm_common.changes import Changes, ChangesParams
from crm_common.concurrency import check_optional_version, check_version
from crm_common.errors import FieldError, not_found, null_errors
from crm_common.events.outbox import add_events
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from campaign_svc.events import publish as events
from campaign_svc.models import (
    Campaign,
    CampaignConversion,
    CampaignInteraction,
    CampaignLead,
    CampaignStatus,
    CampaignTarget,
)
from campaign_svc.schemas import CampaignCreateRequest, CampaignUpdateRequest
from campaign_svc.service.errors import (
    CampaignClosed,
    CampaignNotDeletable,
    InvalidCampaign,
    InvalidStatusTransition,
)

FINAL = {CampaignStatus.COMPLETED, CampaignStatus.CANCELLED}
# action -> (allowed from, to)
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "activate": ({CampaignStatus.PLANNING, CampaignStatus.PAUSED}, CampaignStatus.ACTIVE),
    "pause": ({CampaignStatus.ACTIVE}, CampaignStatus.PAUSED),
    "complete": ({CampaignStatus.ACTIVE, CampaignStatus.PAUSED}, CampaignStatus.COMPLETED),
    "cancel": (
        {CampaignStatus.PLANNING, CampaignStatus.ACTIVE, CampaignStatus.PAUSED},
        CampaignStatus.CANCELLED,
    ),
}
# What every campaign has: a PATCH may leave these out but not empty them.
NOT_NULL = (
    "name",
    "type",
    "currency",
    "actual_cost",
    "creative_assets",
    "channels",
    "owner_id",
    "custom_fields",
)
SORTS = {
    "name": Campaign.name,
    "createdAt": Campaign.created_at,
    "updatedAt": Campaign.updated_at,
    "startDate": Campaign.start_date,
    "endDate": Campaign.end_date,
    "status": Campaign.status,
}


def date_errors(start: datetime | None, end: datetime | None) -> list[FieldError]:
    if start is not None and end is not None and end < start:
        return [FieldError(field="endDate", message="endDate is before startDate", code="date_order")]
    return []


def invalid(errors: list[FieldError]) -> InvalidCampaign:
    return InvalidCampaign("The campaign is not valid.", errors=errors)


async def create_campaign(
    session: AsyncSession,
    *,
    data: CampaignCreateRequest,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Campaign:
    errors = date_errors(data.start_date, data.end_date)
    if errors:
        raise invalid(errors)
    owner_id = data.owner_id or actor_id
    if caller is not None:  # for someone else only inside the caller's write scope
        caller.check_write(owner_id, data.team_id)
    if data.owner_id is not None:
        await directory.require_active_user(session, data.owner_id, field="ownerId")
    if data.team_id is not None:
        await directory.require_active_team(session, data.team_id, field="teamId")
    now = datetime.now(UTC)
    campaign = Campaign(
        **data.model_dump(exclude={"owner_id"}),
        owner_id=owner_id,
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    await session.flush()
    return campaign


def in_scope(caller: ScopedCaller, access: Access = "read"):
    """The campaigns `caller` may read (or write): by owner and team."""
    return scope_clause(caller, Campaign.owner_id, Campaign.team_id, access=access)


async def get_campaign(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    for_update: bool = False,
    caller: ScopedCaller | None = None,
    write: bool = False,
    archived_ok: bool = False,
) -> Campaign:
    """404 when missing or outside `caller`'s read scope; with `write`, 403 outside the write scope
    and 409 `ARCHIVED` when archived (unless `archived_ok`: archive and restore).
    Its targets, interactions and metrics are reached through it, so they follow."""
    query = select(Campaign).where(Campaign.id == campaign_id).execution_options(populate_existing=True)
    if caller is not None:
        query = query.where(in_scope(caller))
    if for_update:
        query = query.with_for_update()
    campaign = (await session.execute(query)).scalar_one_or_none()
    if campaign is None:
        raise not_found("campaign", campaign_id)
    if write and caller is not None:
        caller.check_write(campaign.owner_id, campaign.team_id)
    if write and not archived_ok:
        check_not_archived(campaign, "campaign")
    return campaign


async def list_campaigns(
    session: AsyncSession,
    *,
    params: PageParams,
    q: str | None,
    status: list[str],
    type_: list[str],
    owner_id: list[uuid.UUID],
    caller: ScopedCaller | None = None,
    archived: ArchivedMode = "exclude",
) -> tuple[list[Campaign], int]:
    query = select(Campaign).where(archived_clause(Campaign.archived_at, archived))
    if caller is not None:
        query = query.where(in_scope(caller))
    if q:
        query = query.where(Campaign.name.ilike(f"%{q}%"))
    if status:
        query = query.where(Campaign.status.in_(status))
    if type_:
        query = query.where(Campaign.type.in_(type_))
    if owner_id:
        query = query.where(Campaign.owner_id.in_(owner_id))
    query = query.order_by(*order_by(params.sort, SORTS, [Campaign.created_at.desc(), Campaign.id]))
    return await paginate(session, query, params)


async def update_campaign(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    *,
    data: CampaignUpdateRequest,
    if_match: str | None,
    caller: ScopedCaller | None = None,
) -> Campaign:
    campaign = await get_campaign(session, campaign_id, for_update=True, caller=caller, write=True)
    check_version(campaign.version, if_match=if_match, body_version=data.version)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    errors = null_errors(data, NOT_NULL)
    if campaign.status in FINAL and set(changes) - {"description", "actual_cost", "custom_fields", "message"}:
        raise CampaignClosed(
            f"Campaign is {campaign.status}: only description, message, actualCost and customFields may change."
        )
    errors += date_errors(
        changes.get("start_date", campaign.start_date), changes.get("end_date", campaign.end_date)
    )
    if errors:
        raise invalid(errors)
    if changes.get("owner_id") and changes["owner_id"] != campaign.owner_id:
        await directory.require_active_user(session, changes["owner_id"], field="ownerId")
    if changes.get("team_id") and changes["team_id"] != campaign.team_id:
        await directory.require_active_team(session, changes["team_id"], field="teamId")
    for key, value in changes.items():
        setattr(campaign, key, value)
    if changes:
        campaign.updated_at = datetime.now(UTC)
        await session.flush()
    return campaign


async def delete_campaign(
    session: AsyncSession, campaign_id: uuid.UUID, *, if_match: str | None, caller: ScopedCaller | None = None
) -> None:
    campaign = await get_campaign(session, campaign_id, for_update=True, caller=caller, write=True)
    check_optional_version(campaign.version, if_match=if_match)
    if campaign.status not in (CampaignStatus.PLANNING, CampaignStatus.CANCELLED):
        raise CampaignNotDeletable(
            f"A {campaign.status} campaign cannot be deleted; only PLANNING or CANCELLED ones."
        )

    for table in (CampaignInteraction, CampaignTarget, CampaignLead, CampaignConversion):
        await session.execute(delete(table).where(table.campaign_id == campaign.id))
    await session.delete(campaign)
    await session.flush()
    await changes.record_deleted(session, "campaign", [campaign.id])


async def changes_feed(
    session: AsyncSession, params: ChangesParams, *, present, caller: ScopedCaller
) -> Changes:
    """Campaigns the caller may read changed after the cursor (archived ones too, with `archivedAt`),
    and deleted or purged ones as tombstones."""
    query = select(Campaign).where(in_scope(caller))
    return await changes.changes_page(session, query, "campaign", params, present)


async def transition(
    session: AsyncSession,
    campaign_id: uuid.UUID,
    action: str,
    *,
    if_match: str | None,
    body_version: int | None,
    caller: ScopedCaller | None = None,
) -> Campaign:
    allowed, to = TRANSITIONS[action]
    campaign = await get_campaign(session, campaign_id, for_update=True, caller=caller, write=True)
    check_optional_version(campaign.version, if_match=if_match, body_version=body_version)
    if campaign.status not in allowed:
        raise InvalidStatusTransition(
            f"Cannot {action} a {campaign.status} campaign.",
            extra={"currentStatus": campaign.status, "allowedFrom": sorted(allowed)},
        )
    now = datetime.now(UTC)
    campaign.status = to
    campaign.updated_at = now
    if to == CampaignStatus.ACTIVE:
        if campaign.start_date is None:
            campaign.start_date = now
        if campaign.activated_at is None:
            campaign.activated_at = now
    if to == CampaignStatus.COMPLETED:
        campaign.completed_at = now
    await session.flush()
    if to == CampaignStatus.ACTIVE:
        await add_events(session, events.campaign_activated(campaign))
    elif to == CampaignStatus.COMPLETED:
        await add_events(session, events.campaign_completed(campaign))
    return campaign
