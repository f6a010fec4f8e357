"""Deliveries: one row per (subscription, event), queued in the same transaction that records the
event in the inbox, then sent by the worker (delivery/worker.py) until a 2xx answer or the end of
the retry schedule. Every attempt is logged."""

import uuid
from datetime import UTC, datetime, timedelta

from crm_common import erasure
from crm_common.db import Database, after_commit, insert_for
from crm_common.errors import not_found
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from crm_common.models import UtcDateTime
from crm_common.pagination import PageParams, paginate
from sqlalchemy import and_, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from webhook_svc.delivery.sender import Outcome
from webhook_svc.events import publish as events
from webhook_svc.models import Attempt, Delivery, DeliveryState, Subscription
from webhook_svc.service import patterns, record_scopes
from webhook_svc.service.errors import DeliveryPending, DeliverySkipped, InvalidRange, WebhookInactive
from webhook_svc.service.subscriptions import FAILURE_STREAK


def event_document(event: CloudEvent) -> dict:
    """The CloudEvent as it is published (structured JSON mode), which is the body we send."""
    return event.model_dump(mode="json", exclude_none=True)


_ACTIVE = select(
    Subscription.id,
    Subscription.event_types,
    Subscription.filter,
    Subscription.created_by,
    Subscription.record_scopes,
).where(Subscription.active)


def _wanting(subscriptions, event: CloudEvent, document: dict) -> list:
    return [
        s
        for s in subscriptions
        if patterns.matches(s.event_types, event.routing_key) and patterns.filter_matches(s.filter, document)
    ]


async def wanted_by_any(db: Database, event: CloudEvent) -> bool:
    """Whether an active subscription wants `event`, read outside any transaction: the consumer
    records an event nobody wants in its inbox alone (crm_common.events.inbox), instead of a
    transaction per event that queues nothing.

    Nothing is lost by it: fan_out delivers an event to the subscriptions active when it reads them,
    and this read happens before that one would; a subscription committed after it is one created
    after the event was handled, which fan_out would not have seen either. Nothing is cached, so a
    subscription made on another replica counts from its commit on."""
    async with db.single_statements(read_only=True) as conn:
        subscriptions = (await conn.execute(_ACTIVE)).all()
    return bool(subscriptions) and bool(_wanting(subscriptions, event, event_document(event)))


async def fan_out(session: AsyncSession, event: CloudEvent, *, wake=None) -> int:
    """Queue a delivery of `event` for every active subscription that wants it; returns how many.
    Runs in the inbox transaction, so an event is queued once whatever the bus redelivers.

    A subscription whose creator may not read the event's record (service/record_scopes.py) gets a
    SKIPPED row instead, with the reason, so its log shows what was withheld and why."""
    record = await record_scopes.resolve_owners(session, event)
    subscriptions = (await session.execute(_ACTIVE)).all()
    document = event_document(event)
    wanted = _wanting(subscriptions, event, document)
    if not wanted:
        return 0
    audience = record_scopes.Audience(session, record)
    now = datetime.now(UTC)
    rows = []
    for subscription in wanted:
        reason = await audience.skip_reason(subscription.created_by, subscription.record_scopes)
        rows.append(
            {
                "id": uuid.uuid4(),
                "subscription_id": subscription.id,
                "event_id": event.id,
                "event_type": event.routing_key,
                "subject": (event.subject or "")[:200] or None,
                "payload": document,
                "event_time": event.time,
                "state": DeliveryState.PENDING if reason is None else DeliveryState.SKIPPED,
                "skip_reason": reason,
                "attempts": 0,
                "total_attempts": 0,
                "next_attempt_at": now if reason is None else None,
                "created_at": now,
            }
        )
    await session.execute(
        insert_for(session, Delivery.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["subscription_id", "event_id"])
    )
    if wake is not None:
        after_commit(session, wake)
    return len(rows)


async def forget_customer(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """customer.erased: the delivery log forgets every event about the customer (delivered or not:
    what was not sent yet is not sent), attempts with it, and so does the event store."""
    await session.execute(delete(Delivery).where(erasure.mentions(Delivery.payload, {str(customer_id)})))
    await erasure.scrub_event_store(session, customer_id=customer_id, values=set())


async def record(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    subscription_id: uuid.UUID,
    url: str,
    outcome: Outcome,
    attempted_at: datetime,
    schedule: list[float],
    disable_after: timedelta,
    disable_after_failures: int,
) -> None:
    """An attempt's outcome: the log row, the delivery's next step, the subscription's health (and
    switching it off after a long failure streak, with a `webhook.disabled` event)."""
    now = datetime.now(UTC)
    delivery = (
        await session.execute(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
    ).scalar_one_or_none()
    if delivery is None:  # its subscription was deleted meanwhile
        return
    session.add(
        Attempt(
            delivery_id=delivery_id,
            attempted_at=attempted_at,
            url=url,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            response_excerpt=outcome.response_excerpt,
            error=outcome.error[:1000] if outcome.error else None,
            success=outcome.success,
        )
    )
    delivery.attempts += 1
    delivery.total_attempts += 1
    delivery.last_attempt_at = attempted_at
    delivery.last_status_code = outcome.status_code
    delivery.last_error = outcome.error[:1000] if outcome.error else None
    delivery.locked_until = None
    if outcome.success:
        delivery.state = DeliveryState.DELIVERED
        delivery.delivered_at = now
        delivery.next_attempt_at = None
    elif delivery.attempts < len(schedule):
        delivery.next_attempt_at = now + timedelta(seconds=schedule[delivery.attempts])
    else:
        delivery.state = DeliveryState.FAILED
        delivery.next_attempt_at = None
    await _health(
        session,
        subscription_id,
        success=outcome.success,
        now=now,
        disable_after=disable_after,
        disable_after_failures=disable_after_failures,
    )


async def _health(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    success: bool,
    now: datetime,
    disable_after: timedelta,
    disable_after_failures: int,
) -> None:
    table = Subscription.__table__
    if success:
        await session.execute(
            update(table)
            .where(table.c.id == subscription_id)
            .values(consecutive_failures=0, failing_since=None, last_success_at=now)
        )
        return
    # One UPDATE (not read-modify-write), so concurrent senders never lose a failure.
    row = (
        await session.execute(
            update(table)
            .where(table.c.id == subscription_id)
            .values(
                consecutive_failures=table.c.consecutive_failures + 1,
                failing_since=func.coalesce(table.c.failing_since, literal(now, UtcDateTime())),
                last_failure_at=now,
            )
            .returning(table.c.consecutive_failures, table.c.failing_since, table.c.active)
        )
    ).first()
    if row is None or not row.active:
        return
    failing_since = row.failing_since if row.failing_since.tzinfo else row.failing_since.replace(tzinfo=UTC)
    if row.consecutive_failures < disable_after_failures or now - failing_since < disable_after:
        return
    switched = (
        await session.execute(
            update(table)
            .where(table.c.id == subscription_id, table.c.active.is_(True))
            .values(
                active=False,
                disabled_reason=FAILURE_STREAK,
                disabled_at=now,
                version=table.c.version + 1,
            )
            .returning(table.c.url, table.c.version)
        )
    ).first()
    if switched is not None:
        await add_events(
            session,
            events.webhook_disabled(
                webhook_id=subscription_id,
                url=switched.url,
                reason=FAILURE_STREAK,
                consecutive_failures=row.consecutive_failures,
                failing_since=failing_since,
                disabled_at=now,
                version=switched.version,
            ),
        )


# --- the log and replays ---------------------------------------------------------------------------


async def list_(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    *,
    params: PageParams,
    state: list[DeliveryState],
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[Delivery], int]:
    query = select(Delivery).where(Delivery.subscription_id == subscription_id)
    if state:
        query = query.where(Delivery.state.in_([s.value for s in state]))
    if event_type:
        query = query.where(Delivery.event_type == event_type)
    if since is not None:
        query = query.where(Delivery.created_at >= since)
    if until is not None:
        query = query.where(Delivery.created_at < until)
    query = query.order_by(Delivery.created_at.desc(), Delivery.id.desc())
    return await paginate(session, query, params)


async def get(session: AsyncSession, subscription_id: uuid.UUID, delivery_id: uuid.UUID) -> Delivery:
    found = (
        await session.execute(
            select(Delivery).where(Delivery.id == delivery_id, Delivery.subscription_id == subscription_id)
        )
    ).scalar_one_or_none()
    if found is None:
        raise not_found("delivery", delivery_id)
    return found


async def attempts_of(session: AsyncSession, delivery_id: uuid.UUID) -> list[Attempt]:
    rows = await session.execute(
        select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.attempted_at, Attempt.id)
    )
    return list(rows.scalars())


def _requeue_values(now: datetime) -> dict:
    return {
        "state": DeliveryState.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "replayed_at": now,
    }


async def replay_one(
    session: AsyncSession, subscription: Subscription, delivery_id: uuid.UUID, *, wake
) -> Delivery:
    _require_active(subscription)
    delivery = await get(session, subscription.id, delivery_id)
    if delivery.state == DeliveryState.PENDING:
        raise DeliveryPending("This delivery is still queued; it is sent again without a replay.")
    if delivery.state == DeliveryState.SKIPPED:
        raise DeliverySkipped(
            f"This delivery was never sent ({delivery.skip_reason}): the webhook's creator may not read "
            "the record it is about.",
        )
    for key, value in _requeue_values(datetime.now(UTC)).items():
        setattr(delivery, key, value)
    await session.flush()
    after_commit(session, wake)
    return delivery


async def replay_range(
    session: AsyncSession,
    subscription: Subscription,
    *,
    since: datetime,
    until: datetime | None,
    states: list[DeliveryState],
    wake,
) -> int:
    _require_active(subscription)
    now = datetime.now(UTC)
    until = until or now
    if until <= since:
        raise InvalidRange("`until` must be after `since`.")
    wanted = [s.value for s in states if s not in (DeliveryState.PENDING, DeliveryState.SKIPPED)]
    if not wanted:
        raise InvalidRange("Replay DELIVERED and/or FAILED deliveries.")
    table = Delivery.__table__
    result = await session.execute(
        update(table)
        .where(
            and_(
                table.c.subscription_id == subscription.id,
                table.c.created_at >= since,
                table.c.created_at < until,
                or_(*(table.c.state == s for s in wanted)),
            )
        )
        .values(**_requeue_values(now))
    )
    after_commit(session, wake)
    return result.rowcount


def _require_active(subscription: Subscription) -> None:
    if not subscription.active:
        raise WebhookInactive("The webhook is not active; activate it (PATCH active: true) before replaying.")
