"""A campaign's members (targets): added by id or from a customer segment, listed, removed."""

import uuid
from typing import Annotated

from crm_common import customer_refs, record_scope
from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, order_by, paginate, sync_page_params
from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from campaign_svc.api.deps import MarketingAccess, settings_of
from campaign_svc.models import CampaignStatus, CampaignTarget, MemberStatus
from campaign_svc.schemas import (
    TargetAddFromSegmentRequest,
    TargetAddRequest,
    TargetPage,
    TargetRead,
    TargetsAddResult,
)
from campaign_svc.service import campaigns, members, segments
from campaign_svc.service.errors import TargetBatchTooLarge

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=problem_doc(401, 403))


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
        raise TargetBatchTooLarge(
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
