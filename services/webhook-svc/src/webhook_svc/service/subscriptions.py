"""Subscriptions: who gets which events where, with which secret."""

import uuid
from datetime import UTC, datetime, timedelta

from crm_common.auth import Principal
from crm_common.concurrency import check_version
from crm_common.errors import not_found, null_errors
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from webhook_svc.models import Subscription
from webhook_svc.schemas import WebhookCreateRequest, WebhookUpdateRequest
from webhook_svc.service import patterns, record_scopes, signing
from webhook_svc.service.errors import InvalidWebhook
from webhook_svc.service.targets import Guard, check_target

DISABLED_BY_USER = "DISABLED_BY_USER"
FAILURE_STREAK = "FAILURE_STREAK"
# What every subscription has: a PATCH may leave these out but not empty them.
NOT_NULL = ("url", "event_types", "active", "ordered_by_aggregate")


async def create(
    session: AsyncSession, *, data: WebhookCreateRequest, guard: Guard, actor: Principal
) -> Subscription:
    # Validated before anything is written: a refused target leaves nothing behind.
    event_types = patterns.check_event_types(data.event_types)
    filter_ = patterns.check_filter(data.filter)
    url = await check_target(guard, data.url)
    now = datetime.now(UTC)
    subscription = Subscription(
        url=url,
        description=data.description,
        event_types=event_types,
        filter=filter_,
        active=data.active,
        ordered_by_aggregate=data.ordered_by_aggregate,
        disabled_reason=None if data.active else DISABLED_BY_USER,
        disabled_at=None if data.active else now,
        secret=signing.new_secret(),
        created_by=actor.id,
        # What the creator may read now; narrowed later by what they may read then (record_scopes).
        record_scopes=record_scopes.captured_scopes(actor),
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription


async def get(session: AsyncSession, subscription_id: uuid.UUID, *, for_update: bool = False) -> Subscription:
    query = select(Subscription).where(Subscription.id == subscription_id)
    if for_update:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise not_found("webhook", subscription_id)
    return found


SORTABLE = {
    "createdAt": Subscription.created_at,
    "url": Subscription.url,
    "updatedAt": Subscription.updated_at,
}


async def list_(
    session: AsyncSession, *, params: PageParams, active: bool | None
) -> tuple[list[Subscription], int]:
    query = select(Subscription)
    if active is not None:
        query = query.where(Subscription.active == active)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Subscription.created_at, Subscription.id]))
    return await paginate(session, query, params)


async def update(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    data: WebhookUpdateRequest,
    guard: Guard,
    if_match: str | None,
) -> Subscription:
    subscription = await get(session, subscription_id)
    check_version(subscription.version, if_match=if_match, body_version=data.version)
    errors = null_errors(data, NOT_NULL)
    if errors:
        raise InvalidWebhook("The webhook is not valid.", errors=errors)
    fields = data.model_fields_set
    now = datetime.now(UTC)
    if "url" in fields and data.url is not None:
        subscription.url = await check_target(guard, data.url)
    if "event_types" in fields and data.event_types is not None:
        subscription.event_types = patterns.check_event_types(data.event_types)
    if "filter" in fields:
        subscription.filter = patterns.check_filter(data.filter)
    if "description" in fields:
        subscription.description = data.description
    if "ordered_by_aggregate" in fields and data.ordered_by_aggregate is not None:
        subscription.ordered_by_aggregate = data.ordered_by_aggregate
    if "active" in fields and data.active is not None and data.active != subscription.active:
        subscription.active = data.active
        if data.active:
            # A fresh start: the failure streak that switched it off is forgotten.
            subscription.disabled_reason = None
            subscription.disabled_at = None
            subscription.consecutive_failures = 0
            subscription.failing_since = None
        else:
            subscription.disabled_reason = DISABLED_BY_USER
            subscription.disabled_at = now
    subscription.updated_at = now
    await session.flush()
    return subscription


async def delete(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    subscription = await get(session, subscription_id)
    await session.delete(subscription)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, subscription_id: uuid.UUID, *, grace: timedelta
) -> Subscription:
    subscription = await get(session, subscription_id)
    now = datetime.now(UTC)
    subscription.previous_secret = subscription.secret if grace.total_seconds() > 0 else None
    subscription.previous_secret_expires_at = now + grace if grace.total_seconds() > 0 else None
    subscription.secret = signing.new_secret()
    subscription.updated_at = now
    await session.flush()
    return subscription


def secrets_in_force(
    secret: str, previous: str | None, previous_expires_at: datetime | None, *, now: datetime
) -> list[str]:
    if previous and previous_expires_at and previous_expires_at > now:
        return [secret, previous]
    return [secret]
