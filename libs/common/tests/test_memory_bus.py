"""The in-process bus of the embedded default."""

import asyncio
import uuid

import pytest
from crm_common.events.bus import UnroutableError, topic_matches
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


async def test_a_poison_event_is_dead_lettered_and_others_keep_flowing():
    bus = MemoryBus(delivery_limit=3, retry_delay=0.001)
    poison = event()
    handled, tries = [], []

    async def handler(e):
        if e.id == poison.id:
            tries.append(1)
            raise ValueError("cannot handle")
        handled.append(e.id)

    await bus.consume("svc", ["customer.*"], handler)
    others = [event() for _ in range(5)]
    results = await bus.publish([poison, *others], timeout=5)
    assert results == [None] * 6
    assert set(handled) == {e.id for e in others}
    assert len(tries) == 3
    assert [e.id for e in bus.dead_letters["svc"]] == [poison.id]
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
