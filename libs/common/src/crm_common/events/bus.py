"""What a message bus must do for the outbox relay and the consumers, whichever broker is behind it."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from crm_common.events.envelope import CloudEvent

Handler = Callable[[CloudEvent], Awaitable[None]]


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

    async def consume(self, consumer: str, routing_keys: Sequence[str], handler: Handler) -> None:
        """Deliver matching events to `handler`; an exception means retry, then dead-letter."""
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
