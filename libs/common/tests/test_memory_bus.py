"""The in-process bus of the embedded default."""

import asyncio
import uuid

import pytest
from crm_common.events.bus import PermanentEventError, UnroutableError, topic_matches
from crm_common.events.dead_letters import DeadLetterWriteFailed
from crm_common.events.envelope import new_event
from crm_common.events.memory_bus import MemoryBus


def event(key="customer.created"):
    return new_event(key, service="test", subject=uuid.uuid4(), data={})


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("customer.created", "customer.created", True),
        ("customer.*", "customer.created", True),
        ("customer.*", "customer.address.added", False),
        ("customer.#", "customer.address.added", True),
        ("#", "anything.at.all", True),
        ("*.won", "opportunity.won", True),
        ("*.won", "opportunity.lost", False),
    ],
)
def test_topic_matching(pattern, key, expected):
    assert topic_matches(pattern, key) is expected


async def test_publish_resolves_after_the_handler_ran():
    bus = MemoryBus()
    handled = []

    async def handler(e):
        await asyncio.sleep(0.01)
        handled.append(e.id)

    await bus.consume("svc", ["customer.created"], handler)
    e = event()
    assert await bus.publish([e], timeout=2) == [None]
    assert handled == [e.id]
    await bus.close()


class Sink:
    """A dead-letter store that can be made to fail."""

    def __init__(self):
        self.letters: list[tuple] = []
        self.broken = False

    async def __call__(self, event, error, attempts, first_failed_at):
        if self.broken:
            raise OSError("attempt to write a readonly database")
        self.letters.append((event.id, type(error).__name__, attempts))


async def test_a_poison_event_is_retried_then_dead_lettered_and_others_keep_flowing():
    bus = MemoryBus(delivery_limit=3, retry_delay=0.001)
    sink = Sink()
    poison = event()
    handled, tries = [], []

    async def handler(e):
        if e.id == poison.id:
            tries.append(1)
            raise ValueError("cannot handle")
        handled.append(e.id)

    await bus.consume("svc", ["customer.*"], handler, dead_letter=sink)
    others = [event() for _ in range(5)]
    results = await bus.publish([poison, *others], timeout=5)
    # Delivered: applied, or durably recorded as a dead letter.
    assert results == [None] * 6
    assert set(handled) == {e.id for e in others}
    assert len(tries) == 3
    assert sink.letters == [(poison.id, "ValueError", 3)]
    await bus.close()


async def test_a_permanent_error_is_dead_lettered_at_once():
    bus = MemoryBus(delivery_limit=5, retry_delay=0.001)
    sink = Sink()
    tries = []

    async def handler(e):
        tries.append(1)
        raise PermanentEventError("breaks its contract")

    await bus.consume("svc", ["customer.*"], handler, dead_letter=sink)
    e = event()
    assert await bus.publish([e], timeout=5) == [None]
    assert len(tries) == 1
    assert sink.letters == [(e.id, "PermanentEventError", 1)]
    await bus.close()


async def test_when_the_dead_letter_cannot_be_written_the_publish_fails_and_a_retry_delivers():
    bus = MemoryBus(delivery_limit=2, retry_delay=0.001)
    sink = Sink()
    sink.broken = True
    failing = True
    handled = []

    async def handler(e):
        if failing:
            raise OSError("attempt to write a readonly database")
        handled.append(e.id)

    await bus.consume("svc", ["customer.*"], handler, dead_letter=sink)
    e = event()
    (result,) = await bus.publish([e], timeout=5)
    # Not delivered: the relay keeps the row PENDING and tries again later.
    assert isinstance(result, OSError)
    failing = False
    assert await bus.publish([e], timeout=5) == [None]
    assert handled == [e.id] and sink.letters == []
    await bus.close()


async def test_without_a_dead_letter_store_a_poison_event_is_never_reported_delivered():
    bus = MemoryBus(delivery_limit=2, retry_delay=0.001)

    async def handler(e):
        raise ValueError("cannot handle")

    await bus.consume("svc", ["customer.*"], handler)
    (result,) = await bus.publish([event()], timeout=5)
    assert isinstance(result, DeadLetterWriteFailed)
    await bus.close()


async def test_a_redelivery_waits_for_the_delivery_under_way_instead_of_queueing_it_again():
    bus = MemoryBus()
    calls = []
    release = asyncio.Event()

    async def handler(e):
        calls.append(e.id)
        await release.wait()

    await bus.consume("svc", ["customer.*"], handler)
    e = event()
    (first,) = await bus.publish([e], timeout=0.05)
    assert isinstance(first, TimeoutError)
    again = asyncio.create_task(bus.publish([e], timeout=5))
    await asyncio.sleep(0.05)
    release.set()
    assert await again == [None]
    assert calls == [e.id]
    await bus.close()


async def test_an_event_nobody_subscribes_to_is_unroutable():
    bus = MemoryBus()
    (result,) = await bus.publish([event("nobody.listens")], timeout=1)
    assert isinstance(result, UnroutableError)


async def test_a_declared_queue_holds_events_until_its_consumer_starts():
    bus = MemoryBus()
    await bus.declare("late", ["customer.created"])
    e = event()
    (result,) = await bus.publish([e], timeout=0.05)
    assert isinstance(result, TimeoutError)  # the relay keeps the row and tries again
    got = asyncio.Event()

    async def handler(ev):
        got.set()

    await bus.consume("late", ["customer.created"], handler)
    await asyncio.wait_for(got.wait(), 1)
    await bus.close()


async def test_queues_of_services_this_process_does_not_run_are_not_declared():
    bus = MemoryBus(consumers={"mine"})
    await bus.declare("elsewhere", ["customer.created"])
    handled = []

    async def handler(e):
        handled.append(e.id)

    await bus.consume("mine", ["customer.created"], handler)
    e = event()
    # Returns at once: it does not wait for a consumer that will never run here.
    assert await bus.publish([e], timeout=0.5) == [None]
    assert handled == [e.id]
    (result,) = await bus.publish([event("ticket.created")], timeout=0.5)
    assert isinstance(result, UnroutableError)
    await bus.close()


async def test_a_lone_service_without_a_broker_hosts_only_its_own_queue():
    from crm_common.app import make_bus
    from crm_common.settings import ServiceSettings

    class Settings(ServiceSettings):
        service_name = "customer"

    bus = make_bus(Settings(amqp_url=None))
    await bus.declare("activity", ["customer.created"])
    (result,) = await bus.publish([event()], timeout=0.5)
    # Not a publish hanging on activity-svc's queue: nobody here consumes it, and the relay says so.
    assert isinstance(result, UnroutableError)


class Batching:
    """A handler that also takes batches (as crm_common.events.inbox's dispatcher does)."""

    def __init__(self, poison=None):
        self.poison = poison
        self.batches: list[list[uuid.UUID]] = []
        self.alone: list[uuid.UUID] = []

    async def __call__(self, e):
        if e.id == self.poison:
            raise ValueError("cannot handle")
        self.alone.append(e.id)

    async def apply_batch(self, events):
        ids = [e.id for e in events]
        if self.poison in ids:
            raise ValueError("cannot handle")
        self.batches.append(ids)
        return ["applied"] * len(events)


async def test_waiting_events_go_to_a_batch_handler_together():
    bus = MemoryBus(workers=1, batch_size=4)
    handler = Batching()
    events = [event() for _ in range(6)]
    # Declared first: the queue holds the events until its consumer starts.
    await bus.declare("svc", ["customer.*"])
    published = asyncio.create_task(bus.publish(events, timeout=5))
    await asyncio.sleep(0.01)
    await bus.consume("svc", ["customer.*"], handler)
    assert await published == [None] * 6
    assert handler.batches == [[e.id for e in events[:4]], [e.id for e in events[4:]]]
    assert handler.alone == []
    await bus.close()


async def test_a_failed_batch_is_delivered_event_by_event_and_only_the_poison_is_dead_lettered():
    bus = MemoryBus(workers=1, delivery_limit=2, retry_delay=0.001)
    sink = Sink()
    events = [event() for _ in range(3)]
    handler = Batching(poison=events[1].id)
    await bus.declare("svc", ["customer.*"])
    published = asyncio.create_task(bus.publish(events, timeout=5))
    await asyncio.sleep(0.01)
    await bus.consume("svc", ["customer.*"], handler, dead_letter=sink)
    assert await published == [None] * 3
    assert handler.batches == []
    assert handler.alone == [events[0].id, events[2].id]
    assert sink.letters == [(events[1].id, "ValueError", 2)]
    await bus.close()
