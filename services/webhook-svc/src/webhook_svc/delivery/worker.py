"""The delivery worker: started in the app's lifespan like the outbox relay, it claims due
deliveries, sends each (several at once), and records every outcome.

A claim is a lease (`locked_until`) committed before sending, so no transaction stays open across
an HTTP call; a sender that dies leaves its deliveries to be claimed again when the lease runs out
(at-least-once). On Postgres the claim skips rows another instance is claiming (SKIP LOCKED).
"""

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from crm_common.db import Database
from crm_common.events.envelope import CloudEvent
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import aliased

from webhook_svc.delivery.sender import Outcome, Sender
from webhook_svc.models import Delivery, DeliveryState, Subscription
from webhook_svc.service import deliveries, signing
from webhook_svc.service.subscriptions import secrets_in_force
from webhook_svc.service.targets import Guard
from webhook_svc.settings import Settings

log = logging.getLogger("crm.webhooks")


@dataclass(frozen=True)
class Job:
    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    url: str
    secrets: list[str]
    payload: dict


def body_of(payload: dict) -> bytes:
    """The CloudEvent in structured JSON mode, in the envelope's field order."""
    return CloudEvent.model_validate(payload).to_json()


async def send(sender: Sender, job: Job) -> tuple[datetime, Outcome]:
    attempted_at = datetime.now(UTC)
    body = body_of(job.payload)
    # webhook-id is the event id: the same for every attempt and replay, so receivers deduplicate.
    headers = signing.headers(job.secrets, msg_id=str(job.event_id), timestamp=attempted_at, body=body)
    return attempted_at, await sender.post(job.url, body, headers)


class DeliveryWorker:
    def __init__(self, settings: Settings, guard: Guard):
        self.settings = settings
        self.guard = guard
        self.db: Database | None = None
        self.sender: Sender | None = None
        self._wake = asyncio.Event()
        self._in_flight: dict[uuid.UUID, asyncio.Task] = {}

    def wake(self) -> None:
        self._wake.set()

    def open(self, db: Database) -> None:
        """Ready to send (a test ping from the API) in every process; `start` then delivers."""
        self.db = db
        self.sender = Sender(
            self.guard,
            timeout=self.settings.timeout_seconds,
            max_connections=max(2 * self.settings.delivery_concurrency, 10),
        )

    def start(self) -> asyncio.Task:
        return asyncio.create_task(self.run())

    async def close(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.sender is not None:
            await self.sender.close()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            free = self.settings.delivery_concurrency - len(self._in_flight)
            wait = self.settings.poll_interval
            if free > 0:
                try:
                    jobs, next_due = await self.claim(free)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures += 1
                    log.warning("webhook claim failed", exc_info=True)
                    await asyncio.sleep(min(5.0, 0.5 * 2 ** (failures - 1)))
                    continue
                for job in jobs:
                    task = asyncio.create_task(self._deliver(job))
                    self._in_flight[job.delivery_id] = task
                    task.add_done_callback(lambda _t, i=job.delivery_id: self._finished(i))
                if len(jobs) == free:
                    continue
                if next_due is not None:
                    wait = min(wait, max(0.0, (next_due - datetime.now(UTC)).total_seconds()))
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _finished(self, delivery_id: uuid.UUID) -> None:
        self._in_flight.pop(delivery_id, None)
        self._wake.set()

    async def claim(self, limit: int) -> tuple[list[Job], datetime | None]:
        """Lease up to `limit` due deliveries of active subscriptions; also the time the next
        pending one falls due (to sleep until then)."""
        assert self.db is not None
        now = datetime.now(UTC)
        due = (
            select(Delivery.id)
            .join(Subscription, Subscription.id == Delivery.subscription_id)
            .where(
                Delivery.state == DeliveryState.PENDING,
                Delivery.next_attempt_at <= now,
                or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
                Subscription.active,
                not_held(),
            )
            .order_by(Delivery.next_attempt_at, Delivery.created_at)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            due = due.with_for_update(of=Delivery.__table__, skip_locked=True)
        async with self.db.transaction() as session:
            ids = [i for i in (await session.execute(due)).scalars() if i not in self._in_flight]
            jobs: list[Job] = []
            if ids:
                lease = now + timedelta(seconds=self.settings.lease_seconds)
                await session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(locked_until=lease))
                rows = await session.execute(
                    select(
                        Delivery.id,
                        Delivery.subscription_id,
                        Delivery.event_id,
                        Delivery.payload,
                        Subscription.url,
                        Subscription.secret,
                        Subscription.previous_secret,
                        Subscription.previous_secret_expires_at,
                    )
                    .join(Subscription, Subscription.id == Delivery.subscription_id)
                    .where(Delivery.id.in_(ids))
                )
                jobs = [
                    Job(
                        delivery_id=r.id,
                        subscription_id=r.subscription_id,
                        event_id=r.event_id,
                        url=r.url,
                        secrets=secrets_in_force(
                            r.secret, r.previous_secret, r.previous_secret_expires_at, now=now
                        ),
                        payload=r.payload,
                    )
                    for r in rows
                ]
            # Rows in flight (leased) are not "due": their sender wakes the loop when it is done, and
            # an expired lease is found at the next poll. Counting them would make the loop spin
            # while a slow receiver takes its time.
            next_due = (
                await session.execute(
                    select(func.min(Delivery.next_attempt_at))
                    .join(Subscription, Subscription.id == Delivery.subscription_id)
                    .where(
                        Delivery.state == DeliveryState.PENDING,
                        Subscription.active,
                        or_(Delivery.locked_until.is_(None), Delivery.locked_until < now),
                        not_held(),
                    )
                )
            ).scalar_one_or_none()
        return jobs, _aware(next_due)

    async def _deliver(self, job: Job) -> None:
        assert self.db is not None and self.sender is not None
        try:
            attempted_at, outcome = await send(self.sender, job)
            if outcome.refused:
                log.warning("webhook %s: target refused: %s", job.subscription_id, outcome.error)
            settings = self.settings
            async with self.db.transaction() as session:
                await deliveries.record(
                    session,
                    delivery_id=job.delivery_id,
                    subscription_id=job.subscription_id,
                    url=job.url,
                    outcome=outcome,
                    attempted_at=attempted_at,
                    schedule=list(settings.retry_schedule_seconds),
                    disable_after=timedelta(hours=settings.disable_after_hours),
                    disable_after_failures=settings.disable_after_failures,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is tried again: at least once, never dropped.
            log.warning("webhook delivery %s could not be recorded", job.delivery_id, exc_info=True)


def not_held():
    """The condition that a delivery is not held back by per-aggregate ordering: its subscription does
    not ask for it, or no earlier delivery of the same subscription and subject (the aggregate) is
    still PENDING (queued, in flight or retrying). A held delivery becomes due when the one before it
    is DELIVERED or FAILED (the worker is woken when a delivery finishes)."""
    earlier = aliased(Delivery)
    pending_before = (
        select(earlier.id)
        .where(
            earlier.subscription_id == Delivery.subscription_id,
            earlier.subject == Delivery.subject,
            earlier.state == DeliveryState.PENDING,
            or_(
                earlier.created_at < Delivery.created_at,
                and_(earlier.created_at == Delivery.created_at, earlier.event_time < Delivery.event_time),
            ),
        )
        .exists()
    )
    return or_(Subscription.ordered_by_aggregate.is_(False), Delivery.subject.is_(None), ~pending_before)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
