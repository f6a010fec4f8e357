"""Campaigns: create, list, sync, edit, delete, the status actions, archive and restore."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import IfMatch, etag
from crm_common.errors import problem_doc
from crm_common.pagination import MAX_FILTER_IDS, PageParams, any_of, sync_page_params
from fastapi import APIRouter, Depends, Query, Response

from campaign_svc.api.deps import MarketingAccess
from campaign_svc.models import CampaignStatus, CampaignType
from campaign_svc.schemas import (
    CampaignChanges,
    CampaignCreateRequest,
    CampaignPage,
    CampaignRead,
    CampaignTransitionRequest,
    CampaignUpdateRequest,
)
from campaign_svc.service import archiving, campaigns

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=problem_doc(401, 403))


def read(campaign) -> CampaignRead:
    return CampaignRead.model_validate(campaign)


async def _present(rows) -> list[CampaignRead]:
    return [read(c) for c in rows]


@router.post(
    "",
    status_code=201,
    operation_id="campaigns_create",
    summary="Create a campaign",
    responses=problem_doc(422),
)
async def create_campaign(
    body: CampaignCreateRequest, session: SessionDep, user: MarketingAccess, response: Response
) -> CampaignRead:
    campaign = await campaigns.create_campaign(session, data=body, actor_id=user.id, caller=user)
    response.headers["Location"] = f"/api/v1/campaigns/{campaign.id}"
    response.headers["ETag"] = etag(campaign.version)
    return read(campaign)


@router.get("", operation_id="campaigns_list", summary="List campaigns", responses=problem_doc(422))
async def list_campaigns(
    session: SessionDep,
    user: MarketingAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    q: Annotated[str | None, Query(max_length=200, description="Substring of the name.")] = None,
    status: Annotated[list[CampaignStatus], any_of()] = [],
    type: Annotated[list[CampaignType], any_of()] = [],
    owner_id: Annotated[list[uuid.UUID], any_of(alias="ownerId", max_items=MAX_FILTER_IDS)] = [],
    archived: ArchivedParam = "exclude",
) -> CampaignPage:
    items, total = await campaigns.list_campaigns(
        session,
        params=params,
        q=q,
        status=status,
        type_=type,
        owner_id=owner_id,
        caller=user,
        archived=archived,
    )
    return CampaignPage(
        items=[read(c) for c in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
        next=params.next,
    )


@router.get(
    "/changes",
    operation_id="campaigns_changes",
    summary="Changes feed: campaigns changed or deleted since a cursor",
    description="For mirrors (docs/sync.md): campaigns as the list answers them, oldest change first, and each one deleted as a tombstone `{id, deleted: true}`. "
    "Start with no cursor; keep `next` for the following call, also when `hasMore` is false.",
    responses=problem_doc(422),
)
async def campaign_changes(
    session: SessionDep, user: MarketingAccess, params: Annotated[ChangesParams, Depends(changes_params)]
) -> CampaignChanges:
    return await campaigns.changes_feed(session, params, present=_present, caller=user)


@router.get(
    "/{campaign_id}", operation_id="campaigns_get", summary="Get a campaign", responses=problem_doc(404)
)
async def get_campaign(
    campaign_id: uuid.UUID, session: SessionDep, user: MarketingAccess, response: Response
) -> CampaignRead:
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user)
    response.headers["ETag"] = etag(campaign.version)
    return read(campaign)


@router.patch(
    "/{campaign_id}",
    operation_id="campaigns_update",
    summary="Edit a campaign's fields",
    description="Send the version you read (If-Match or `version`). Status changes go through the actions.",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_campaign(
    campaign_id: uuid.UUID,
    body: CampaignUpdateRequest,
    session: SessionDep,
    user: MarketingAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    campaign = await campaigns.update_campaign(
        session, campaign_id, data=body, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(campaign.version)
    return read(campaign)


@router.delete(
    "/{campaign_id}",
    status_code=204,
    operation_id="campaigns_delete",
    summary="Delete a PLANNING or CANCELLED campaign",
    responses=problem_doc(404, 409, 412),
)
async def delete_campaign(
    campaign_id: uuid.UUID, session: SessionDep, user: MarketingAccess, if_match: IfMatch = None
) -> Response:
    await campaigns.delete_campaign(session, campaign_id, if_match=if_match, caller=user)
    return Response(status_code=204)


def _transition_route(action: str, summary: str):
    async def endpoint(
        campaign_id: uuid.UUID,
        session: SessionDep,
        user: MarketingAccess,
        response: Response,
        body: CampaignTransitionRequest | None = None,
        if_match: IfMatch = None,
    ) -> CampaignRead:
        campaign = await campaigns.transition(
            session,
            campaign_id,
            action,
            if_match=if_match,
            body_version=body.version if body else None,
            caller=user,
        )
        response.headers["ETag"] = etag(campaign.version)
        return read(campaign)

    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        endpoint,
        methods=["POST"],
        operation_id=f"campaigns_{action}",
        summary=summary,
        description="Version optional (If-Match or `version`); when sent, a stale one is a 412.",
        responses=problem_doc(404, 409, 412),
        response_model=CampaignRead,
    )


_transition_route("activate", "Start (PLANNING) or resume (PAUSED) a campaign: ACTIVE")
_transition_route("pause", "Pause an ACTIVE campaign")
_transition_route("complete", "Complete an ACTIVE or PAUSED campaign")
_transition_route("cancel", "Cancel a campaign that is not COMPLETED or CANCELLED")


@router.post(
    "/{campaign_id}/archive",
    operation_id="campaigns_archive",
    summary="Archive a campaign",
    description=archive_description("lists and searches", "campaign.purged")
    + " Purging deletes its members, interactions, leads and conversions, as a delete does.",
    responses=problem_doc(404, 412),
)
async def archive_campaign(
    campaign_id: uuid.UUID,
    session: SessionDep,
    user: MarketingAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    campaign = await archiving.set_archived(
        session, campaign_id, archived=True, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(campaign.version)
    return read(campaign)


@router.post(
    "/{campaign_id}/restore",
    operation_id="campaigns_restore",
    summary="Restore an archived campaign",
    description=RESTORE_DESCRIPTION,
    responses=problem_doc(404, 412),
)
async def restore_campaign(
    campaign_id: uuid.UUID,
    session: SessionDep,
    user: MarketingAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CampaignRead:
    campaign = await archiving.set_archived(
        session, campaign_id, archived=False, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(campaign.version)
    return read(campaign)
