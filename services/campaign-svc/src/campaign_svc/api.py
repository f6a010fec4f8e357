"""HTTP routes of campaign-svc: translate requests to service calls and back."""

import uuid
from typing import Annotated, Literal

from crm_common import customer_refs, record_scope
from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import IfMatch, etag
from crm_common.errors import ProblemError, problem_doc
from crm_common.pagination import (
    MAX_FILTER_IDS,
    PageParams,
    any_of,
    order_by,
    paginate,
    sync_page_params,
)
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select

from campaign_svc.models import CampaignStatus, CampaignTarget, CampaignType, MemberStatus
from campaign_svc.schemas import (
    CampaignChanges,
    CampaignCreateRequest,
    CampaignMetrics,
    CampaignPage,
    CampaignRead,
    CampaignTransitionRequest,
    CampaignUpdateRequest,
    InteractionRecordRequest,
    InteractionResult,
    TargetAddFromSegmentRequest,
    TargetAddRequest,
    TargetPage,
    TargetRead,
    TargetsAddResult,
)
from campaign_svc.service import archiving, attribution, campaigns, members, segments, tracking
from campaign_svc.settings import Settings

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=problem_doc(401, 403))
# The caller with their record scopes (crm_common.record_scope): campaigns by owner and team.
MarketingAccess = Annotated[ScopedCaller, Depends(scoped("campaigns"))]


def settings_of(request: Request) -> Settings:
    return request.app.state.campaign_settings


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


# --- targets ---------------------------------------------------------------------------------------


@router.post(
    "/{campaign_id}/targets",
    operation_id="campaign_targets_add",
    summary="Add customers to a campaign by id",
    description="Duplicates are reported as `alreadyTargets`; unknown and INACTIVE customers are refused per "
    "item (`refused`), the others are added. A customer outside your customer read scope is refused as "
    "`UNKNOWN_CUSTOMER`, like one that does not exist. Merged customers stand for the customer they were "
    "merged into.",
    responses=problem_doc(404, 409, 422),
)
async def add_targets(
    campaign_id: uuid.UUID,
    body: TargetAddRequest,
    session: SessionDep,
    user: MarketingAccess,
    request: Request,
) -> TargetsAddResult:
    limit = settings_of(request).target_batch_limit
    if len(body.customer_ids) > limit:
        raise ProblemError(
            422,
            "TARGET_BATCH_TOO_LARGE",
            f"At most {limit} customer ids per request.",
            extra={"limit": limit},
        )
    campaign = await campaigns.get_campaign(session, campaign_id, for_update=True, caller=user, write=True)
    # Customers by id are checked against the caller's *customer* read scope (as customer-svc would
    # answer them); a segment's members come from customer-svc evaluated with the caller's token.
    customers = await record_scope.resolve(session, user.principal, "customers")
    added, already, refused = await members.add_targets(
        session, campaign, body.customer_ids, scope=customers.read
    )
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user)
    return TargetsAddResult(
        added=added, already_targets=already, refused=refused, target_count=campaign.target_count
    )


@router.post(
    "/{campaign_id}/targets/from-segment",
    operation_id="campaign_targets_add_segment",
    summary="Add every customer of a saved customer segment",
    description="customer-svc evaluates the segment (with your token); INACTIVE customers are refused, "
    "existing targets reported. 503 `CUSTOMER_SERVICE_UNAVAILABLE` when customer-svc cannot answer: "
    "nothing is written.",
    responses=problem_doc(404, 409, 422, 503),
)
async def add_targets_from_segment(
    campaign_id: uuid.UUID,
    body: TargetAddFromSegmentRequest,
    session: SessionDep,
    user: MarketingAccess,
    request: Request,
) -> TargetsAddResult:
    settings = settings_of(request)
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user, write=True)
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        raise members.closed(campaign)
    found = await segments.segment_customers(
        base_url=settings.resolved_customer_url,
        segment_id=body.segment_id,
        authorization=request.headers.get("Authorization"),
        limit=settings.segment_target_limit,
        timeout=settings.customer_timeout,
        transport=request.app.state.customer_transport,
    )
    campaign = await campaigns.get_campaign(session, campaign_id, for_update=True, caller=user, write=True)
    await members.remember_customers(session, found)
    added, already, refused = await members.add_targets(
        session, campaign, list(found), statuses={cid: status for cid, (_, status) in found.items()}
    )
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user)
    return TargetsAddResult(
        added=added, already_targets=already, refused=refused, target_count=campaign.target_count
    )


TARGET_SORTS = {
    "addedAt": CampaignTarget.added_at,
    "status": CampaignTarget.status,
    "lastInteractionAt": CampaignTarget.last_interaction_at,
}


@router.get(
    "/{campaign_id}/targets",
    operation_id="campaign_targets_list",
    summary="List a campaign's members with their status",
    responses=problem_doc(404, 422),
)
async def list_targets(
    campaign_id: uuid.UUID,
    session: SessionDep,
    user: MarketingAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    status: Annotated[list[MemberStatus], any_of()] = [],
) -> TargetPage:
    await campaigns.get_campaign(session, campaign_id, caller=user)
    query = select(CampaignTarget).where(CampaignTarget.campaign_id == campaign_id)
    if status:
        query = query.where(CampaignTarget.status.in_(status))
    query = query.order_by(
        *order_by(params.sort, TARGET_SORTS, [CampaignTarget.added_at, CampaignTarget.customer_id])
    )
    rows, total = await paginate(session, query, params)
    names = {}
    if rows:
        names = await customer_refs.names(session, (r.customer_id for r in rows))
    items = [
        TargetRead.model_validate(r).model_copy(update={"customer_name": names.get(r.customer_id)})
        for r in rows
    ]
    return TargetPage(items=items, total=total, page=params.page, pageSize=params.page_size, next=params.next)


@router.delete(
    "/{campaign_id}/targets/{customer_id}",
    status_code=204,
    operation_id="campaign_targets_remove",
    summary="Remove a customer from a campaign",
    responses=problem_doc(404, 409),
)
async def remove_target(
    campaign_id: uuid.UUID, customer_id: uuid.UUID, session: SessionDep, user: MarketingAccess
) -> Response:
    campaign = await campaigns.get_campaign(session, campaign_id, for_update=True, caller=user, write=True)
    await members.remove_target(session, campaign, customer_id)
    return Response(status_code=204)


# --- tracking and metrics --------------------------------------------------------------------------


@router.post(
    "/{campaign_id}/interactions",
    operation_id="campaign_interactions_record",
    summary="Record a batch of interactions from a sending platform",
    description="All or nothing: any bad item (not a target, unknown kind, time outside the campaign) is a "
    "422 `INVALID_INTERACTIONS` listing every bad item as `interactions.<n>.<field>`. An `externalId` already "
    "recorded for this campaign (or repeated in the batch) counts as a duplicate and changes nothing. Member "
    "status only moves forward; counters are recounted from the members.",
    responses=problem_doc(404, 409, 422),
)
async def record_interactions(
    campaign_id: uuid.UUID,
    body: InteractionRecordRequest,
    session: SessionDep,
    user: MarketingAccess,
    request: Request,
) -> InteractionResult:
    campaign = await campaigns.get_campaign(session, campaign_id, for_update=True, caller=user, write=True)
    recorded, duplicates, changed = await tracking.record_interactions(
        session, campaign, body.interactions, limit=settings_of(request).interaction_batch_limit
    )
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user)
    return InteractionResult(
        received=len(body.interactions),
        recorded=recorded,
        duplicates=duplicates,
        status_changes=changed,
        campaign=read(campaign),
    )


@router.get(
    "/{campaign_id}/metrics",
    operation_id="campaigns_metrics",
    summary="Funnel, leads, cost per lead, attributed revenue and ROI",
    responses=problem_doc(404, 422),
)
async def campaign_metrics(
    campaign_id: uuid.UUID,
    session: SessionDep,
    user: MarketingAccess,
    request: Request,
    attribution_model: Annotated[
        Literal["FIRST_TOUCH", "LAST_TOUCH"] | None,
        Query(alias="attributionModel", description="Defaults to the service setting (FIRST_TOUCH)."),
    ] = None,
) -> CampaignMetrics:
    settings = settings_of(request)
    campaign = await campaigns.get_campaign(session, campaign_id, caller=user)
    model = attribution_model or settings.attribution_model.upper()
    if model not in attribution.MODELS:
        model = "FIRST_TOUCH"
    return await attribution.metrics(
        session, campaign, model=model, window_days=settings.attribution_window_days
    )
