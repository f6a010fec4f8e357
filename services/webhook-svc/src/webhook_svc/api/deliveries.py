"""The delivery log of a webhook: list, read one with its attempts, replay one or a time range."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, page_params
from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from webhook_svc.api.deps import WebhookAccess
from webhook_svc.models import Delivery, DeliveryState
from webhook_svc.schemas import (
    AttemptRead,
    DeliveryDetail,
    DeliveryPage,
    DeliveryRead,
    ReplayResult,
    WebhookReplayRequest,
)
from webhook_svc.service import deliveries, subscriptions

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=problem_doc(401, 403))


@router.get(
    "/{webhook_id}/deliveries",
    operation_id="webhooks_deliveries_list",
    summary="The delivery log of a webhook, newest first",
    responses=problem_doc(404, 422),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    user: WebhookAccess,
    params: Annotated[PageParams, Depends(page_params)],
    state: Annotated[list[DeliveryState], any_of()] = [],
    event_type: Annotated[str | None, Query(alias="eventType", max_length=200)] = None,
    since: Annotated[AwareDatetime | None, Query(description="Created at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Created before.")] = None,
) -> DeliveryPage:
    await subscriptions.get(session, webhook_id)
    items, total = await deliveries.list_(
        session, webhook_id, params=params, state=state, event_type=event_type, since=since, until=until
    )
    return DeliveryPage(
        items=[DeliveryRead.model_validate(d) for d in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )


async def _detail(session, delivery: Delivery) -> DeliveryDetail:
    attempts = await deliveries.attempts_of(session, delivery.id)
    return DeliveryDetail(
        **DeliveryRead.model_validate(delivery).model_dump(),
        payload=delivery.payload,
        attempt_log=[AttemptRead.model_validate(a) for a in attempts],
    )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    operation_id="webhooks_deliveries_get",
    summary="One delivery with its payload and every attempt",
    responses=problem_doc(404),
)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, user: WebhookAccess
) -> DeliveryDetail:
    return await _detail(session, await deliveries.get(session, webhook_id, delivery_id))


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    operation_id="webhooks_deliveries_replay",
    summary="Send one delivery again (a new retry schedule)",
    description="Same body and `webhook-id` (the event id), so a receiver that already has it can tell. "
    "409 when it is still queued or the webhook is inactive.",
    responses=problem_doc(404, 409),
)
async def replay_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, user: WebhookAccess, request: Request
) -> DeliveryDetail:
    sub = await subscriptions.get(session, webhook_id)
    delivery = await deliveries.replay_one(session, sub, delivery_id, wake=request.app.state.wake_deliveries)
    return await _detail(session, delivery)


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    operation_id="webhooks_replay",
    summary="Send again every delivery of a time range",
    description="Deliveries created in [since, until) in the given states (default FAILED) are queued again "
    "with a new retry schedule. Events from while the webhook was inactive were never queued and are not "
    "replayed.",
    responses=problem_doc(404, 409, 422),
)
async def replay_range(
    webhook_id: uuid.UUID,
    body: WebhookReplayRequest,
    session: SessionDep,
    user: WebhookAccess,
    request: Request,
) -> ReplayResult:
    sub = await subscriptions.get(session, webhook_id)
    queued = await deliveries.replay_range(
        session,
        sub,
        since=body.since,
        until=body.until,
        states=body.states,
        wake=request.app.state.wake_deliveries,
    )
    return ReplayResult(queued=queued)
