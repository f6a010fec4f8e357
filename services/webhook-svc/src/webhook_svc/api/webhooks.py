"""Webhook subscriptions: the event types, create, list, read, edit, delete, rotate the secret, ping."""

import uuid
from datetime import timedelta
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import IfMatch, etag
from crm_common.contracts.registry import EVENT_TYPES
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query, Request, Response

from webhook_svc.api.deps import WebhookAccess, settings_of
from webhook_svc.models import Subscription
from webhook_svc.schemas import (
    EventTypeList,
    TestResult,
    WebhookCreateRequest,
    WebhookHealth,
    WebhookPage,
    WebhookRead,
    WebhookRotateSecretRequest,
    WebhookUpdateRequest,
    WebhookWithSecret,
)
from webhook_svc.service import pings, subscriptions

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=problem_doc(401, 403))


def read(sub: Subscription) -> WebhookRead:
    return WebhookRead(
        id=sub.id,
        url=sub.url,
        description=sub.description,
        event_types=sub.event_types,
        filter=sub.filter,
        active=sub.active,
        ordered_by_aggregate=sub.ordered_by_aggregate,
        disabled_reason=sub.disabled_reason,
        disabled_at=sub.disabled_at,
        health=WebhookHealth(
            consecutive_failures=sub.consecutive_failures,
            failing_since=sub.failing_since,
            last_success_at=sub.last_success_at,
            last_failure_at=sub.last_failure_at,
        ),
        previous_secret_expires_at=sub.previous_secret_expires_at if sub.previous_secret else None,
        created_by=sub.created_by,
        record_scopes=sub.record_scopes,
        created_at=sub.created_at,
        updated_at=sub.updated_at,
        version=sub.version,
    )


def with_secret(sub: Subscription) -> WebhookWithSecret:
    return WebhookWithSecret(**read(sub).model_dump(), secret=sub.secret)


@router.get(
    "/event-types",
    operation_id="webhooks_event_types",
    summary="The event types a webhook can subscribe to",
)
async def event_types(user: WebhookAccess) -> EventTypeList:
    return EventTypeList(items=sorted(EVENT_TYPES))


@router.post(
    "",
    status_code=201,
    operation_id="webhooks_create",
    summary="Subscribe an HTTP endpoint to events",
    description="The answer holds the signing `secret`, shown this once. The URL must resolve to public "
    "addresses only (422 `WEBHOOK_TARGET_FORBIDDEN` otherwise; see docs/webhooks.md).",
    responses=problem_doc(422),
)
async def create_webhook(
    body: WebhookCreateRequest, session: SessionDep, user: WebhookAccess, request: Request, response: Response
) -> WebhookWithSecret:
    sub = await subscriptions.create(session, data=body, guard=request.app.state.webhook_guard, actor=user)
    response.headers["Location"] = f"/api/v1/webhooks/{sub.id}"
    response.headers["ETag"] = etag(sub.version)
    return with_secret(sub)


@router.get(
    "", operation_id="webhooks_list", summary="List webhook subscriptions", responses=problem_doc(422)
)
async def list_webhooks(
    session: SessionDep,
    user: WebhookAccess,
    params: Annotated[PageParams, Depends(page_params)],
    active: Annotated[bool | None, Query(description="Only active (or inactive) ones.")] = None,
) -> WebhookPage:
    items, total = await subscriptions.list_(session, params=params, active=active)
    return WebhookPage(
        items=[read(s) for s in items], total=total, page=params.page, pageSize=params.page_size
    )


@router.get(
    "/{webhook_id}",
    operation_id="webhooks_get",
    summary="Get a webhook subscription",
    responses=problem_doc(404),
)
async def get_webhook(
    webhook_id: uuid.UUID, session: SessionDep, user: WebhookAccess, response: Response
) -> WebhookRead:
    sub = await subscriptions.get(session, webhook_id)
    response.headers["ETag"] = etag(sub.version)
    return read(sub)


@router.patch(
    "/{webhook_id}",
    operation_id="webhooks_update",
    summary="Edit a webhook subscription, or (de)activate it",
    description="Send the version you read (If-Match or `version`). `active: true` re-enables a subscription "
    "the platform disabled; deliveries still queued then go out.",
    responses=problem_doc(404, 412, 422, 428),
)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdateRequest,
    session: SessionDep,
    user: WebhookAccess,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> WebhookRead:
    sub = await subscriptions.update(
        session, webhook_id, data=body, guard=request.app.state.webhook_guard, if_match=if_match
    )
    if sub.active:
        request.app.state.wake_deliveries()
    response.headers["ETag"] = etag(sub.version)
    return read(sub)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    operation_id="webhooks_delete",
    summary="Delete a webhook subscription and its delivery log",
    responses=problem_doc(404),
)
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, user: WebhookAccess) -> Response:
    await subscriptions.delete(session, webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    operation_id="webhooks_rotate_secret",
    summary="Replace the signing secret",
    description="The new secret is in the answer, shown this once. The previous one keeps signing beside it "
    "(two signatures in `webhook-signature`) for `graceSeconds` (default 24 hours), so receivers can switch "
    "without losing a delivery.",
    responses=problem_doc(404, 422),
)
async def rotate_secret(
    webhook_id: uuid.UUID,
    session: SessionDep,
    user: WebhookAccess,
    request: Request,
    body: WebhookRotateSecretRequest | None = None,
) -> WebhookWithSecret:
    grace_seconds = body.grace_seconds if body and body.grace_seconds is not None else None
    grace = (
        timedelta(seconds=grace_seconds)
        if grace_seconds is not None
        else timedelta(hours=settings_of(request).rotation_grace_hours)
    )
    sub = await subscriptions.rotate_secret(session, webhook_id, grace=grace)
    return with_secret(sub)


@router.post(
    "/{webhook_id}/test",
    operation_id="webhooks_test",
    summary="Send a `webhook.ping` event now and answer how it went",
    description="Signed like any delivery and kept in the delivery log. 422 `WEBHOOK_TARGET_FORBIDDEN` when the "
    "URL now resolves to an address webhooks may not go to (nothing is sent).",
    responses=problem_doc(404, 422),
)
async def test_webhook(webhook_id: uuid.UUID, user: WebhookAccess, request: Request) -> TestResult:
    worker = request.app.state.webhook_worker
    delivery_id, outcome = await pings.ping(request.app.state.runtime.db, worker.sender, webhook_id)
    return TestResult(
        delivery_id=delivery_id,
        success=outcome.success,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        response_excerpt=outcome.response_excerpt,
        error=outcome.error,
    )
