"""In-process bus for the embedded default.

Events still go through each service's outbox and inbox. `publish` resolves only once every
subscriber has handled the event (or dead-lettered it), so the relay marks an outbox row sent only
after its effects are committed: a crash in between means redelivery, never loss.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from crm_common.events.bus import Handler, UnroutableError, topic_matches
from crm_common.events.envelope import CloudEvent

log = logging.getLogger("crm.events.memory")


@dataclass
class _Subscriber:
    consumer: str
    routing_keys: tuple[str, ...]
    handler: Handler | None = None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    workers: list[asyncio.Task] = field(default_factory=list)


class MemoryBus:
    def __init__(
        self,
        *,
        delivery_limit: int = 5,
        workers: int = 4,
        retry_delay: float = 0.05,
        consumers: set[str] | None = None,
    ):
        """`consumers`: the services this process runs (None: all). Queues of the others are not
        declared: in process, a queue nobody will consume would hold every publish to its timeout."""
        self.consumers = consumers
        self.delivery_limit = delivery_limit
        self.worker_count = workers
        self.retry_delay = retry_delay
        self._subscribers: dict[str, _Subscriber] = {}
        self.dead_letters: dict[str, list[CloudEvent]] = {}

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

    async def consume(self, consumer: str, routing_keys: Sequence[str], handler: Handler) -> None:
        await self.declare(consumer, routing_keys)
        sub = self._subscribers[consumer]
        sub.handler = handler
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
            future = loop.create_future()
            sub.queue.put_nowait((event, future))
            done.append(future)
        # A timeout leaves the row pending; the redelivery that follows is absorbed by the inbox.
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(asyncio.shield(f) for f in done))

    # Workers start with the first handler; until then a declared queue just holds its events.
    async def _work(self, sub: _Subscriber) -> None:
        while True:
            event, future = await sub.queue.get()
            try:
                await self._deliver(sub, event)
            finally:
                if not future.done():
                    future.set_result(None)

    async def _deliver(self, sub: _Subscriber, event: CloudEvent) -> None:
        for attempt in range(1, self.delivery_limit + 1):
            try:
                await sub.handler(event)  # type: ignore[misc]
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "handler %s failed on %s (attempt %d)", sub.consumer, event.id, attempt, exc_info=True
                )
                await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
        log.error("dead-lettered %s %s for %s", event.type, event.id, sub.consumer)
        self.dead_letters.setdefault(sub.consumer, []).append(event)
