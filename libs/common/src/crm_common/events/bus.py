"""What a message bus must do for the outbox relay and the consumers, whichever broker is behind it."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from crm_common.events.dead_letters import DeadLetterSink, PermanentEventError
from crm_common.events.envelope import CloudEvent

__all__ = ["Bus", "DeadLetterSink", "Handler", "PermanentEventError", "UnroutableError", "topic_matches"]

# What it answers is not used (the inbox dispatcher says "applied", "duplicate" or "ignored").
Handler = Callable[[CloudEvent], Awaitable[object]]


class UnroutableError(Exception):
    """The broker has no queue bound for this routing key: nobody would receive the event."""


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, events: Sequence[CloudEvent], *, timeout: float) -> list[BaseException | None]:
        """Publish all, wait for every confirm (at most `timeout` s); one result per event, None = confirmed."""
        ...

    async def declare(self, consumer: str, routing_keys: Sequence[str]) -> None:
        """Create the consumer's durable queue and bindings (idempotent)."""
        ...

    async def consume(
        self,
        consumer: str,
        routing_keys: Sequence[str],
        handler: Handler,
        *,
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        """Deliver matching events to `handler`; an exception means retry with backoff, then hand the
        event to `dead_letter` (at once for a PermanentEventError). The delivery is done only when
        the handler succeeded or `dead_letter` returned."""
        ...

    async def is_ready(self) -> bool: ...


def topic_matches(pattern: str, key: str) -> bool:
    """AMQP topic matching: `*` is one word, `#` is zero or more."""
    p, k = pattern.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(match(i + 1, jj) for jj in range(j, len(k) + 1))
        return j < len(k) and (p[i] == "*" or p[i] == k[j]) and match(i + 1, j + 1)

    return match(0, 0)
