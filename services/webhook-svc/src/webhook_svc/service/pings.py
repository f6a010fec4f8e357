"""`POST /webhooks/{id}/test`: a `webhook.ping` CloudEvent sent now, signed like any delivery, its
outcome answered and kept in the delivery log. Runs outside a request transaction: no database lock
is held while the receiver takes its time."""

import uuid
from datetime import UTC, datetime

from crm_common.db import Database
from crm_common.events.envelope import new_event

from webhook_svc.delivery.sender import Outcome, Sender
from webhook_svc.delivery.worker import Job, send
from webhook_svc.events.publish import SERVICE
from webhook_svc.models import Attempt, Delivery, DeliveryState
from webhook_svc.service import subscriptions
from webhook_svc.service.deliveries import event_document
from webhook_svc.service.targets import forbidden

PING = "webhook.ping"


async def ping(db: Database, sender: Sender, subscription_id: uuid.UUID) -> tuple[uuid.UUID, Outcome]:
    async with db.transaction(read_only=True) as session:
        sub = await subscriptions.get(session, subscription_id)
        now = datetime.now(UTC)
        secrets = subscriptions.secrets_in_force(
            sub.secret, sub.previous_secret, sub.previous_secret_expires_at, now=now
        )
        url = sub.url
    event = new_event(
        PING,
        service=SERVICE,
        subject=subscription_id,
        data={"webhookId": str(subscription_id), "message": "A test delivery from the CRM."},
    )
    document = event_document(event)
    job = Job(uuid.uuid4(), subscription_id, event.id, url, secrets, document)
    attempted_at, outcome = await send(sender, job)
    if outcome.refused:
        # Nothing was sent and nothing is kept: the answer is the refusal.
        raise forbidden(outcome.error.removeprefix("refused: "))
    async with db.transaction() as session:
        session.add(
            Delivery(
                id=job.delivery_id,
                subscription_id=subscription_id,
                event_id=event.id,
                event_type=PING,
                subject=str(subscription_id),
                payload=document,
                event_time=event.time,
                state=DeliveryState.DELIVERED if outcome.success else DeliveryState.FAILED,
                attempts=1,
                total_attempts=1,
                created_at=attempted_at,
                delivered_at=datetime.now(UTC) if outcome.success else None,
                last_attempt_at=attempted_at,
                last_status_code=outcome.status_code,
                last_error=outcome.error,
            )
        )
        await session.flush()
        session.add(
            Attempt(
                delivery_id=job.delivery_id,
                attempted_at=attempted_at,
                url=url,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response_excerpt=outcome.response_excerpt,
                error=outcome.error,
                success=outcome.success,
            )
        )
    return job.delivery_id, outcome
