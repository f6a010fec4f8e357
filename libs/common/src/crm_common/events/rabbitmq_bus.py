"""RabbitMQ bus on aio-pika.

Topology: one durable topic exchange `crm.events`; per consuming service a durable quorum queue
`<service>.events` with an explicit delivery limit, dead-lettering through the direct exchange
`crm.events.dlx` into `<service>.events.dlq`. Messages are persistent; publishes are mandatory and
confirmed, so an unroutable or refused message raises instead of vanishing. A robust connection
re-creates channels, queues and consumers after the broker comes back.

Backlogs: for a handler that takes batches, deliveries wait for one of `prefetch` workers, each
taking what is waiting (up to `batch_size`) into one transaction and acknowledging it all after the
commit; a lone delivery is handled alone, as it arrives.

Dead letters: a failing handler is redelivered with a growing pause; on its last delivery (or its
first, for a PermanentEventError) the event is recorded in the consumer's own `event_dead_letters`
table (crm_common.events.dead_letters) and acknowledged, the same operator model as the embedded
default (`crm events dlq ...`). Only if that write fails too, or the message cannot be read at all,
does it end in the broker's `<service>.events.dlq`, which `crm events dlq replay` also drains. A
message that is not an event at all (crm_common.events.acceptance: too large, not JSON, not a
CloudEvent) is recorded the same way at once, with the reason and the start of its bytes.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import PublishError

from crm_common.events.acceptance import UnreadableMessage, read_message
from crm_common.events.bus import DeadLetterSink, Handler, PermanentEventError, UnroutableError
from crm_common.events.envelope import CONTENT_TYPE, CloudEvent
from crm_common.observability import reset_request_id, set_request_id

log = logging.getLogger("crm.events.rabbitmq")


class RabbitBus:
    def __init__(
        self,
        url: str,
        *,
        namespace: str = "",
        delivery_limit: int = 5,
        prefetch: int = 100,
        batch_size: int = 1,
        connection_name: str = "crm",
        reconnect_interval: float = 1.0,
    ):
        self.url = url
        self.exchange_name = f"{namespace}crm.events"
        self.dlx_name = f"{namespace}crm.events.dlx"
        self.namespace = namespace
        self.delivery_limit = delivery_limit
        self.prefetch = prefetch
        self.batch_size = max(1, batch_size)
        self.connection_name = connection_name
        self.reconnect_interval = reconnect_interval
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractRobustChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._workers: list[asyncio.Task[None]] = []

    def queue_name(self, consumer: str) -> str:
        return f"{self.namespace}{consumer}.events"

    def dead_letter_queue_name(self, consumer: str) -> str:
        return f"{self.queue_name(consumer)}.dlq"

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(
            self.url,
            client_properties={"connection_name": self.connection_name},
            reconnect_interval=self.reconnect_interval,
        )
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await self._publish_channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        await self._publish_channel.declare_exchange(
            self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True
        )

    async def close(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def is_ready(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._connection.connected.is_set()
        )

    async def publish(self, events: Sequence[CloudEvent], *, timeout: float) -> list[BaseException | None]:
        # Pipelined: every message is on the wire before the first confirm is awaited.
        results = await asyncio.gather(
            *(self._publish_one(e, timeout) for e in events), return_exceptions=True
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def _publish_one(self, event: CloudEvent, timeout: float) -> None:
        if self._exchange is None:
            raise ConnectionError("bus not started")
        message = aio_pika.Message(
            event.to_json(),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(event.id),
            type=event.type,
            correlation_id=event.correlationid,
            timestamp=event.time,
        )
        try:
            await self._exchange.publish(
                message, routing_key=event.routing_key, mandatory=True, timeout=timeout
            )
        except PublishError as exc:
            raise UnroutableError(event.routing_key) from exc

    async def declare(self, consumer: str, routing_keys: Sequence[str]) -> None:
        if self._connection is None:
            raise ConnectionError("bus not started")
        channel = await self._connection.channel()
        try:
            await self._declare_on(channel, consumer, routing_keys)
        finally:
            await channel.close()

    async def _declare_on(
        self, channel: AbstractChannel, consumer: str, routing_keys: Sequence[str]
    ) -> AbstractQueue:
        exchange = await channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dlx = await channel.declare_exchange(self.dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        dlq = await channel.declare_queue(
            self.dead_letter_queue_name(consumer), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=consumer)
        queue = await channel.declare_queue(
            self.queue_name(consumer),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": self.delivery_limit,
                "x-dead-letter-exchange": self.dlx_name,
                "x-dead-letter-routing-key": consumer,
            },
        )
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        return queue

    async def consume(
        self,
        consumer: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        """`prefetch` deliveries are handled at once. A handler that takes batches (`apply_batch`,
        crm_common.events.inbox) gets up to `batch_size` waiting events in one transaction per
        delivery instead: a backlog drains with one commit per batch, a trickle still goes one by one."""
        if self._connection is None:
            raise ConnectionError("bus not started")
        apply_batch = getattr(handler, "apply_batch", None)
        batch_size = self.batch_size if apply_batch is not None else 1
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.prefetch * batch_size)
        queue = await self._declare_on(channel, consumer, routing_keys)
        if apply_batch is None or batch_size == 1:

            async def on_message(message: AbstractIncomingMessage) -> None:
                await self._deliver(message, consumer, handler, dead_letter)

            await queue.consume(on_message)
            return
        # Deliveries wait here for one of `prefetch` workers. After a reconnection the robust
        # channel consumes anew; what is still queued from the old channel is applied (or found a
        # duplicate) and its ack fails, and the broker delivers it again: nothing is lost.
        waiting: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

        async def on_delivery(message: AbstractIncomingMessage) -> None:
            waiting.put_nowait(message)

        for _ in range(self.prefetch):
            self._workers.append(
                asyncio.create_task(self._work(waiting, consumer, handler, apply_batch, dead_letter))
            )
        await queue.consume(on_delivery)

    async def _work(
        self,
        waiting: "asyncio.Queue[AbstractIncomingMessage]",
        consumer: str,
        handler: Handler,
        apply_batch: Callable[[Sequence[CloudEvent]], Awaitable[object]],
        dead_letter: DeadLetterSink | None,
    ) -> None:
        while True:
            taken = [await waiting.get()]
            while len(taken) < self.batch_size and not waiting.empty():
                taken.append(waiting.get_nowait())
            try:
                await self._deliver_batch(taken, consumer, handler, apply_batch, dead_letter)
            except asyncio.CancelledError:
                raise
            except Exception:
                # An ack on a channel that closed meanwhile: the broker delivers those again.
                log.warning(
                    "%s: a batch of %d deliveries was not settled", consumer, len(taken), exc_info=True
                )

    async def _deliver_batch(
        self,
        taken: list[AbstractIncomingMessage],
        consumer: str,
        handler: Handler,
        apply_batch: Callable[[Sequence[CloudEvent]], Awaitable[object]],
        dead_letter: DeadLetterSink | None,
    ) -> None:
        """Several deliveries in one transaction. If the batch fails, nothing of it is kept and each
        is delivered alone, so a failing event is retried and dead-lettered on its own."""
        readable: list[tuple[AbstractIncomingMessage, CloudEvent]] = []
        for message in taken:
            try:
                readable.append((message, read_message(message.body)))
            except UnreadableMessage as exc:
                await self._unreadable(message, consumer, exc, dead_letter)
        if len(readable) > 1:
            try:
                await apply_batch([event for _, event in readable])
            except Exception:
                log.info("%s: a batch of %d events failed; delivering each alone", consumer, len(readable))
            else:
                for message, _ in readable:
                    await message.ack()
                return
        for message, event in readable:
            await self._handle(message, event, consumer, handler, dead_letter)

    async def _deliver(
        self,
        message: AbstractIncomingMessage,
        consumer: str,
        handler: Handler,
        dead_letter: DeadLetterSink | None,
    ) -> None:
        try:
            event = read_message(message.body)
        except UnreadableMessage as exc:
            await self._unreadable(message, consumer, exc, dead_letter)
            return
        await self._handle(message, event, consumer, handler, dead_letter)

    async def _handle(
        self,
        message: AbstractIncomingMessage,
        event: CloudEvent,
        consumer: str,
        handler: Handler,
        dead_letter: DeadLetterSink | None,
    ) -> None:
        token = set_request_id(event.correlationid)
        try:
            await handler(event)
        except Exception as exc:
            deliveries = _delivery_count(message) + 1
            permanent = isinstance(exc, PermanentEventError)
            if permanent or deliveries > self.delivery_limit:
                await self._give_up(message, consumer, event, exc, deliveries, dead_letter)
                return
            log.warning(
                "handler %s failed on %s %s (delivery %d of %d)",
                consumer,
                event.type,
                event.id,
                deliveries,
                self.delivery_limit + 1,
                exc_info=True,
            )
            # Back off before handing it back, so a passing fault gets time to pass.
            await asyncio.sleep(min(0.1 * 2 ** (deliveries - 1), 5.0))
            await message.nack(requeue=True)
        else:
            await message.ack()
        finally:
            reset_request_id(token)

    async def _unreadable(
        self,
        message: AbstractIncomingMessage,
        consumer: str,
        error: UnreadableMessage,
        dead_letter: DeadLetterSink | None,
    ) -> None:
        """Not an event at all: no retry can help. Recorded with its reason in the consumer's dead
        letters and acknowledged; if that is impossible, the broker's dead-letter queue keeps it."""
        log.error("unreadable message %s on %s: %s", message.message_id, self.queue_name(consumer), error)
        record = getattr(dead_letter, "unreadable", None)
        if record is not None:
            try:
                await record(message.body, error, message_id=message.message_id)
            except Exception:
                log.error(
                    "could not record the unreadable message: it goes to the broker's dead-letter queue"
                )
            else:
                await message.ack()
                return
        await message.reject(requeue=False)

    async def _give_up(
        self,
        message: AbstractIncomingMessage,
        consumer: str,
        event: CloudEvent,
        error: BaseException,
        deliveries: int,
        dead_letter: DeadLetterSink | None,
    ) -> None:
        """The last delivery failed: record the dead letter in the consumer's database and ack; if
        that is impossible, leave it to the broker's dead-letter queue."""
        if dead_letter is not None:
            try:
                await dead_letter(event, error, deliveries, None)
            except Exception:
                log.error(
                    "could not record dead letter %s %s for %s: it goes to the broker's dead-letter queue",
                    event.type,
                    event.id,
                    consumer,
                    exc_info=True,
                )
            else:
                log.error(
                    "dead-lettered %s %s for %s after %d deliveries: %s",
                    event.type,
                    event.id,
                    consumer,
                    deliveries,
                    error,
                    exc_info=error,
                )
                await message.ack()
                return
        # Rejected without requeue: the queue's dead-letter exchange routes it to `<consumer>.events.dlq`.
        await message.reject(requeue=False)


def _delivery_count(message: AbstractIncomingMessage) -> int:
    """Failed deliveries so far, from the quorum queue's header. A publisher can set that header on
    a first delivery too: a value that is not a count reads as 0 (the queue's own limit still holds)."""
    try:
        count: Any = (message.headers or {}).get("x-delivery-count", 0)
        return max(0, int(count))
    except (TypeError, ValueError):
        return 0
