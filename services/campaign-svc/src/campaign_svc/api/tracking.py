"""Tracking a campaign: interactions reported by sending platforms, and its metrics."""

import uuid
from typing import Annotated, Literal

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from fastapi import APIRouter, Query, Request

from campaign_svc.api.deps import MarketingAccess, settings_of
from campaign_svc.schemas import CampaignMetrics, CampaignRead, InteractionRecordRequest, InteractionResult
from campaign_svc.service import attribution, campaigns, tracking

router = APIRouter(prefix="/api/v1/campaigns", tags=["campaigns"], responses=problem_doc(401, 403))


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
        campaign=CampaignRead.model_validate(campaign),
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
