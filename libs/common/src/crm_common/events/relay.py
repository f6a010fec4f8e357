"""The outbox relay: publishes committed events, marks them sent, never drops one.

Batches are published pipelined and confirmed within a deadline. A row that fails stays PENDING
with an exponential backoff. On Postgres the batch is claimed with FOR UPDATE SKIP LOCKED and held
until its outcome is recorded, so two relay instances never publish the same row. SQLite (embedded
default) has one process per file, so it reads, publishes and records in separate short transactions.
"""

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import Database, affected, not_writing_records
from crm_common.events.bus import Bus, UnroutableError
from crm_common.events.envelope import CloudEvent
from crm_common.events.tables import outbox
from crm_common.sql_types import AnyRow

log = logging.getLogger("crm.events.relay")
RELAYED = Counter("crm_outbox_relayed_total", "Outbox rows handled by the relay", ["service", "outcome"])
PURGED = Counter(
    "crm_outbox_purged_total", "Outbox rows removed by the retention, by state", ["service", "state"]
)


class BusUnavailable(Exception):
    pass


class InvalidOutboxRow(Exception):
    """The row's payload is not a CloudEvent: it is marked FAILED, with the reason, and skipped."""


def backoff(attempts: int, cap: float = 60.0) -> float:
    return min(cap, 0.5 * 2.0 ** max(attempts - 1, 0))


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        publish_timeout: float = 5.0,
        retention: timedelta = timedelta(days=7),
    ):
        self.db = db
        self.bus = bus
        self.service = service
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.retention = retention
        self._wake = asyncio.Event()
        self._next_purge = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                handled = await self.publish_batch()
                failures = 0
            except asyncio.CancelledError:
                raise
            except BusUnavailable as exc:
                failures += 1
                log.warning("relay waiting for the broker: %s", exc)
                handled = 0
                await asyncio.sleep(backoff(failures, cap=5))
            except Exception:
                failures += 1
                log.warning("relay batch failed", exc_info=True)
                handled = 0
                await asyncio.sleep(backoff(failures, cap=5))
            if handled >= self.batch_size:
                continue
            await self._purge_now_and_then()
            # Not asyncio.wait_for: on 3.11 it can swallow a cancellation that coincides with a
            # wake-up, and the relay would outlive its service's shutdown.
            try:
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _purge_now_and_then(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._next_purge:
            return
        self._next_purge = loop.time() + 600
        try:
            await self.purge()
        except Exception:
            log.warning("outbox purge failed", exc_info=True)

    async def purge(self) -> int:
        """Delete PUBLISHED and UNROUTED rows older than the retention (by the time they were sent or
        found unroutable); pending rows stay. Returns how many were deleted, and says so."""
        cutoff = datetime.now(UTC) - self.retention
        removed = {}
        async with self.db.transaction() as session:
            for state in ("PUBLISHED", "UNROUTED"):
                result = await session.execute(
                    delete(outbox).where(outbox.c.state == state).where(outbox.c.published_at < cutoff)
                )
                removed[state] = affected(result)
        for state, count in removed.items():
            if count:
                PURGED.labels(self.service, state.lower()).inc(count)
        if any(removed.values()):
            log.info(
                "outbox retention: removed %d published and %d unrouted rows older than %s",
                removed["PUBLISHED"],
                removed["UNROUTED"],
                self.retention,
            )
        return sum(removed.values())

    async def drain(self, timeout: float) -> int:
        """At a graceful stop: publish the rows due now, batch after batch, for at most `timeout`
        seconds; returns how many were handled. Whatever is left (or cut off mid-publish) stays
        PENDING and goes out at the next start; a duplicate is absorbed by the consumers' inbox."""
        handled = 0
        try:
            async with asyncio.timeout(timeout):
                while batch := await self.publish_batch():
                    handled += batch
        except TimeoutError:
            log.warning(
                "%s: outbox not drained within %.0f s; the rest goes out at the next start",
                self.service,
                timeout,
            )
        except Exception as exc:
            log.warning(
                "%s: outbox drain stopped (%s); the rest goes out at the next start", self.service, exc
            )
        return handled

    async def publish_batch(self) -> int:
        """Publish one batch of due rows; returns how many rows it handled.

        Raises BusUnavailable, recording nothing, when the broker is away: rows are not charged an
        attempt for an outage, so they all go out as soon as it ends."""
        if not await self.bus.is_ready():
            raise BusUnavailable("broker connection is down")
        if self.db.is_sqlite:
            # Only a read: no writer's turn and no write lock, so creates do not queue behind it.
            async with self.db.transaction(read_only=True) as session:
                rows = await self._claim(session, lock=False)
            if not rows:
                return 0
            results = await self._publish(rows)
            async with self.db.transaction() as session:
                await self._record(session, rows, results)
            return len(rows)
        async with self.db.transaction() as session:
            rows = await self._claim(session, lock=True)
            if rows:
                await self._record(session, rows, await self._publish(rows))
            return len(rows)

    async def _claim(self, session: AsyncSession, *, lock: bool) -> Sequence[AnyRow]:
        now = datetime.now(UTC)
        query = (
            select(outbox.c.position, outbox.c.payload, outbox.c.attempts)
            .where(outbox.c.state == "PENDING")
            .where(or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now))
            .order_by(outbox.c.position)
            .limit(self.batch_size)
        )
        if lock:
            query = query.where(not_writing_records()).with_for_update(skip_locked=True)
        return (await session.execute(query)).all()

    async def _publish(self, rows: Sequence[AnyRow]) -> list[BaseException | None]:
        results: list[BaseException | None] = [None] * len(rows)
        events: list[CloudEvent] = []
        positions: list[int] = []
        for i, row in enumerate(rows):
            try:
                events.append(CloudEvent.model_validate(row.payload))
                positions.append(i)
            except ValueError as exc:
                # Not an event (written by hand, or by a bug): it can never be published as it is.
                # The rest of the batch goes on without it.
                results[i] = InvalidOutboxRow(f"not a CloudEvent: {exc}")
        if not events:
            return results
        try:
            async with asyncio.timeout(self.publish_timeout + 1):
                published = await self.bus.publish(events, timeout=self.publish_timeout)
        except Exception as exc:
            published = [exc] * len(events)
        for i, result in zip(positions, published, strict=True):
            results[i] = result
        if any(r is not None for r in published) and not await self.bus.is_ready():
            raise BusUnavailable("broker connection lost while publishing")
        return results

    async def _record(
        self, session: AsyncSession, rows: Sequence[AnyRow], results: Sequence[BaseException | None]
    ) -> None:
        now = datetime.now(UTC)
        sent = [row.position for row, error in zip(rows, results, strict=True) if error is None]
        if sent:
            await session.execute(
                update(outbox).where(outbox.c.position.in_(sent)).values(state="PUBLISHED", published_at=now)
            )
            RELAYED.labels(self.service, "published").inc(len(sent))
        for row, error in zip(rows, results, strict=True):
            if error is None:
                continue
            if isinstance(error, InvalidOutboxRow):
                log.error("outbox row at position %s is not an event: %s", row.position, error)
                values: dict[str, Any] = {"state": "FAILED", "last_error": str(error)[:1000]}
                RELAYED.labels(self.service, "invalid").inc()
            elif isinstance(error, UnroutableError):
                # No queue is bound for it: nobody subscribes. Kept (not deleted) so it can be replayed.
                log.warning("event at outbox position %s is unroutable (%s)", row.position, error)
                values = {"state": "UNROUTED", "published_at": now, "last_error": f"unroutable: {error}"}
                RELAYED.labels(self.service, "unrouted").inc()
            else:
                attempts = row.attempts + 1
                values = {
                    "attempts": attempts,
                    "next_attempt_at": now + timedelta(seconds=backoff(attempts)),
                    "last_error": repr(error)[:1000],
                }
                RELAYED.labels(self.service, "failed").inc()
            await session.execute(update(outbox).where(outbox.c.position == row.position).values(**values))
