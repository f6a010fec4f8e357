"""In-process bus for the embedded default.

Events still go through each service's outbox and inbox. `publish` resolves only once every
subscriber has applied the event or durably recorded it as a dead letter in its own database
(crm_common.events.dead_letters), so the relay marks an outbox row sent only after that: a crash in
between means redelivery, never loss. A failing handler is retried with a growing pause
(`retry_delay` doubling, `delivery_limit` attempts, about 1.5 s in all: well within the relay's
publish timeout); a PermanentEventError is not retried. If the dead letter cannot be written either
(the database file is unwritable), the publish of that event fails and the relay retries it later;
subscribers that had applied it already skip it through their inbox.
"""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crm_common.events.bus import DeadLetterSink, Handler, PermanentEventError, UnroutableError, topic_matches
from crm_common.events.dead_letters import DeadLetterWriteFailed
from crm_common.events.envelope import CloudEvent

log = logging.getLogger("crm.events.memory")


@dataclass
class _Subscriber:
    consumer: str
    routing_keys: tuple[str, ...]
    handler: Handler | None = None
    dead_letter: DeadLetterSink | None = None
    # Each event with the future its publisher waits on (resolved once it was handled).
    queue: asyncio.Queue[tuple[CloudEvent, asyncio.Future[None]]] = field(default_factory=asyncio.Queue)
    workers: list[asyncio.Task[None]] = field(default_factory=list)
    # Events queued or being handled, so a redelivery (the relay retrying after a timeout) waits for
    # the delivery under way instead of queueing the same event again.
    pending: dict[uuid.UUID, asyncio.Future[None]] = field(default_factory=dict)


class MemoryBus:
    def __init__(
        self,
        *,
        delivery_limit: int = 5,
        workers: int = 4,
        retry_delay: float = 0.1,
        consumers: set[str] | None = None,
        batch_size: int = 16,
    ):
        """`consumers`: the services this process runs (None: all). Queues of the others are not
        declared: in process, a queue nobody will consume would hold every publish to its timeout.
        `batch_size`: at most this many waiting events go to a handler that takes batches at once."""
        self.consumers = consumers
        self.delivery_limit = max(1, delivery_limit)
        self.worker_count = workers
        self.retry_delay = retry_delay
        self.batch_size = max(1, batch_size)
        self._subscribers: dict[str, _Subscriber] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        for sub in self._subscribers.values():
            for task in sub.workers:
                task.cancel()
            await asyncio.gather(*sub.workers, return_exceptions=True)
            sub.workers.clear()

    async def is_ready(self) -> bool:
        return True

    async def declare(self, consumer: str, routing_keys: Sequence[str]) -> None:
        if self.consumers is not None and consumer not in self.consumers:
            return
        sub = self._subscribers.setdefault(consumer, _Subscriber(consumer, tuple(routing_keys)))
        sub.routing_keys = tuple(dict.fromkeys((*sub.routing_keys, *routing_keys)))

    async def consume(
        self,
        consumer: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        """Without a `dead_letter` sink, an event the handler keeps failing on fails its publish (the
        relay retries it later): nothing is ever dropped."""
        await self.declare(consumer, routing_keys)
        sub = self._subscribers[consumer]
        sub.handler = handler
        sub.dead_letter = dead_letter
        if not sub.workers:
            sub.workers = [asyncio.create_task(self._work(sub)) for _ in range(self.worker_count)]

    async def publish(self, events: Sequence[CloudEvent], *, timeout: float) -> list[BaseException | None]:
        return list(
            await asyncio.gather(*(self._publish_one(e, timeout) for e in events), return_exceptions=True)
        )

    async def _publish_one(self, event: CloudEvent, timeout: float) -> None:
        targets = [
            s
            for s in self._subscribers.values()
            if any(topic_matches(p, event.routing_key) for p in s.routing_keys)
        ]
        if not targets:
            raise UnroutableError(event.routing_key)
        loop = asyncio.get_running_loop()
        done = []
        for sub in targets:
            future = sub.pending.get(event.id)
            if future is None:
                future = loop.create_future()
                # Its outcome is read by whoever still waits; a publisher that timed out does not.
                future.add_done_callback(_consume_outcome)
                sub.pending[event.id] = future
                sub.queue.put_nowait((event, future))
            done.append(future)
        # A timeout leaves the row pending; the redelivery that follows is absorbed by the inbox.
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(asyncio.shield(f) for f in done))

    # Workers start with the first handler; until then a declared queue just holds its events.
    async def _work(self, sub: _Subscriber) -> None:
        while True:
            taken: list[tuple[CloudEvent, asyncio.Future[None]]] = [await sub.queue.get()]
            while len(taken) < self.batch_size and not sub.queue.empty():
                taken.append(sub.queue.get_nowait())
            try:
                alone = await self._deliver_batch(sub, taken) if len(taken) > 1 else taken
                for event, future in alone:
                    await self._deliver_alone(sub, event, future)
            except asyncio.CancelledError:
                for event, future in taken:
                    if sub.pending.get(event.id) is future:
                        del sub.pending[event.id]
                    if not future.done():
                        future.set_exception(ConnectionError("bus closed while delivering"))
                raise

    async def _deliver_batch(
        self, sub: _Subscriber, taken: list[tuple[CloudEvent, asyncio.Future[None]]]
    ) -> list[tuple[CloudEvent, asyncio.Future[None]]]:
        """Several waiting events in one go, when the handler takes batches (one transaction for
        all: crm_common.events.inbox). Returns what is left to deliver alone: nothing, or, if the
        batch failed (nothing of it kept), all of it, so a failing event is retried and
        dead-lettered on its own and does not hold the others back."""
        apply_batch = getattr(sub.handler, "apply_batch", None)
        if apply_batch is None:
            return taken
        try:
            await apply_batch([event for event, _ in taken])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.info("%s: a batch of %d events failed; delivering each alone", sub.consumer, len(taken))
            return taken
        for event, future in taken:
            if not future.done():
                future.set_result(None)
            if sub.pending.get(event.id) is future:
                del sub.pending[event.id]
        return []

    async def _deliver_alone(self, sub: _Subscriber, event: CloudEvent, future: asyncio.Future[None]) -> None:
        try:
            await self._deliver(sub, event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(None)
        finally:
            if sub.pending.get(event.id) is future:
                del sub.pending[event.id]

    async def _deliver(self, sub: _Subscriber, event: CloudEvent) -> None:
        """Applied, or recorded as a dead letter; raises if neither happened."""
        first_failed: datetime | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                await sub.handler(event)  # type: ignore[misc]
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
                first_failed = first_failed or datetime.now(UTC)
                permanent = isinstance(exc, PermanentEventError)
                if permanent or attempt >= self.delivery_limit:
                    break
                log.warning(
                    "handler %s failed on %s %s (attempt %d of %d)",
                    sub.consumer,
                    event.type,
                    event.id,
                    attempt,
                    self.delivery_limit,
                    exc_info=True,
                )
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        if sub.dead_letter is None:
            raise DeadLetterWriteFailed(
                f"{sub.consumer} gave up on {event.type} {event.id} and has no dead-letter store"
            ) from error
        await sub.dead_letter(event, error, attempt, first_failed)
        log.error(
            "dead-lettered %s %s for %s after %d attempt(s): %s",
            event.type,
            event.id,
            sub.consumer,
            attempt,
            error,
            exc_info=error,
        )


def _consume_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
