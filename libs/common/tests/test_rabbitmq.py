"""Integration with a real RabbitMQ (and Postgres for the outbox): the guarantees of DESIGN §4."""

import asyncio
import uuid
from urllib.parse import urlparse

import aio_pika
import pytest
from crm_common.db import Database, ensure_schema
from crm_common.events import dead_letters, tables
from crm_common.events.bus import PermanentEventError, UnroutableError
from crm_common.events.envelope import CONTENT_TYPE, CloudEvent, new_event
from crm_common.events.inbox import idempotent_dispatcher
from crm_common.events.outbox import add_events
from crm_common.events.rabbitmq_bus import RabbitBus
from crm_common.events.relay import OutboxRelay
from crm_common.testing.plugin import eventually
from crm_common.testing.tcp_proxy import TcpProxy
from sqlalchemy import func, insert, select

pytestmark = pytest.mark.integration


def event(key="customer.created", **data):
    return new_event(key, service="test", subject=uuid.uuid4(), data=data)


@pytest.fixture
async def bus(amqp_url, events_namespace):
    bus = RabbitBus(amqp_url, namespace=events_namespace, delivery_limit=2, prefetch=20)
    await bus.start()
    yield bus
    await bus.close()
    await delete_topology(amqp_url, events_namespace)


async def delete_topology(amqp_url: str, namespace: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for name in ("tester", "other"):
            for queue in (f"{namespace}{name}.events", f"{namespace}{name}.events.dlq"):
                channel = await connection.channel()
                await channel.queue_delete(queue)
        channel = await connection.channel()
        for exchange in (f"{namespace}crm.events", f"{namespace}crm.events.dlx"):
            await channel.exchange_delete(exchange)


@pytest.fixture
async def pg_db(postgres_url, pg_schema, effects):
    db = Database(postgres_url, schema=pg_schema)
    await ensure_schema(db.engine, pg_schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
        await conn.run_sync(effects.metadata.create_all)
    yield db
    await db.dispose()


class Collector:
    def __init__(self):
        self.events: list[CloudEvent] = []

    async def __call__(self, e: CloudEvent) -> None:
        self.events.append(e)

    def ids(self) -> list[uuid.UUID]:
        return [e.id for e in self.events]


async def test_published_events_arrive_persistent_and_in_cloudevents_structured_mode(
    bus, amqp_url, events_namespace
):
    await bus.declare("tester", ["customer.created"])
    e = event(name="Ada")
    assert await bus.publish([e], timeout=5) == [None]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{events_namespace}tester.events", ensure=False)
        message = await eventually(lambda: queue.get(fail=False), timeout=5)
        assert message is not None
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == CONTENT_TYPE
        assert message.routing_key == "customer.created"
        assert CloudEvent.from_json(message.body) == e
        await message.ack()


async def test_queues_are_durable_quorum_queues_with_a_delivery_limit_and_dead_letters(
    bus, amqp_url, events_namespace
):
    await bus.declare("tester", ["customer.created"])
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        # Passive re-declaration with the same arguments succeeds only if they match exactly.
        await channel.declare_queue(
            f"{events_namespace}tester.events",
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": 2,
                "x-dead-letter-exchange": f"{events_namespace}crm.events.dlx",
                "x-dead-letter-routing-key": "tester",
            },
        )


async def test_an_unroutable_publish_raises(bus):
    (result,) = await bus.publish([event("nobody.listens")], timeout=5)
    assert isinstance(result, UnroutableError)


async def test_a_poison_event_ends_in_the_dead_letter_queue_while_others_flow(
    bus, amqp_url, events_namespace
):
    poison = event()
    handled = Collector()
    attempts = []

    async def handler(e):
        if e.id == poison.id:
            attempts.append(1)
            raise ValueError("cannot handle this one")
        await handled(e)

    await bus.consume("tester", ["customer.created"], handler)
    others = [event(i=i) for i in range(10)]
    assert await bus.publish([poison, *others], timeout=5) == [None] * 11
    await eventually(lambda: _async(len(handled.events) == 10), timeout=10)
    assert set(handled.ids()) == {e.id for e in others}

    async def dead_lettered():
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(f"{events_namespace}tester.events.dlq", ensure=False)
            message = await queue.get(fail=False)
            if message is None:
                return None
            await message.ack()
            return CloudEvent.from_json(message.body)

    dead = await eventually(dead_lettered, timeout=20)
    assert dead is not None and dead.id == poison.id
    assert len(attempts) == 3  # delivery limit 2: the first delivery and two redeliveries


async def _ready_messages(amqp_url, namespace, queue_name="tester.events") -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{namespace}{queue_name}", passive=True)
        return queue.declaration_result.message_count


async def _dlq_messages(amqp_url, namespace) -> int:
    return await _ready_messages(amqp_url, namespace, "tester.events.dlq")


async def test_a_poison_event_is_recorded_in_the_consumers_dead_letter_table_not_the_broker_dlq(
    bus, amqp_url, events_namespace, pg_db
):
    async with pg_db.engine.begin() as conn:
        await conn.run_sync(dead_letters.metadata.create_all)
    poison, permanent = event(), event()
    attempts = {poison.id: 0, permanent.id: 0}

    async def handler(e):
        attempts[e.id] += 1
        if e.id == permanent.id:
            raise PermanentEventError("breaks its contract")
        raise ValueError("cannot handle this one")

    await bus.consume(
        "tester", ["customer.created"], handler, dead_letter=dead_letters.recorder(pg_db, "tester")
    )
    assert await bus.publish([poison, permanent], timeout=5) == [None, None]

    async def both_recorded():
        rows = await dead_letters.stored(pg_db)
        return len(rows) == 2 and rows

    rows = await eventually(both_recorded, timeout=20)
    by_event = {r.event_id: r for r in rows}
    assert by_event[poison.id].attempts == 3  # delivery limit 2: the first delivery and two redeliveries
    assert by_event[permanent.id].attempts == 1 and attempts[permanent.id] == 1
    assert by_event[poison.id].payload["id"] == str(poison.id)
    assert by_event[poison.id].error.startswith("ValueError: cannot handle this one")
    # Acknowledged once recorded: nothing in the broker's dead-letter queue.
    await asyncio.sleep(0.5)
    assert await _dlq_messages(amqp_url, events_namespace) == 0


async def test_when_the_dead_letter_cannot_be_recorded_the_broker_dlq_keeps_it(
    bus, amqp_url, events_namespace
):
    async def handler(e):
        raise PermanentEventError("breaks its contract")

    async def unwritable(*args):
        raise OSError("database is down")

    await bus.consume("tester", ["customer.created"], handler, dead_letter=unwritable)
    assert await bus.publish([event()], timeout=5) == [None]
    assert await eventually(lambda: _dlq_messages(amqp_url, events_namespace), timeout=20) == 1


async def _async(value):
    return value


async def test_relay_publishes_every_committed_event_and_none_rolled_back(bus, pg_db):
    received = Collector()
    await bus.consume("tester", ["customer.created"], received)
    relay = OutboxRelay(pg_db, bus, service="test", poll_interval=0.1)
    pg_db.outbox_listeners.append(relay.wake)
    task = asyncio.create_task(relay.run())
    try:
        committed = [event(i=i) for i in range(50)]
        for i, e in enumerate(committed):
            async with pg_db.transaction() as s:
                await add_events(s, e)
            if i % 10 == 0:
                with pytest.raises(RuntimeError):
                    async with pg_db.transaction() as s:
                        await add_events(s, event(rolled_back=True))
                        raise RuntimeError("rolled back")
        await eventually(lambda: _async(len(received.events) >= 50), timeout=15)
        await asyncio.sleep(0.3)
        assert sorted(received.ids()) == sorted(e.id for e in committed)
        assert not any(e.data.get("rolled_back") for e in received.events)
    finally:
        task.cancel()


async def test_with_the_broker_cut_off_writes_succeed_and_every_event_arrives_after_it_returns(
    amqp_url, events_namespace, pg_db, effects
):
    parsed = urlparse(amqp_url)
    proxy = TcpProxy(parsed.hostname, parsed.port or 5672)
    port = await proxy.start()
    proxied = amqp_url.replace(f":{parsed.port or 5672}", f":{port}", 1)
    if f":{port}" not in proxied:
        proxied = f"amqp://{parsed.username}:{parsed.password}@127.0.0.1:{port}/"
    # Publisher and consumer both reach the broker through the proxy, so both lose it.
    publisher = RabbitBus(proxied, namespace=events_namespace, reconnect_interval=0.5)
    consumer_bus = RabbitBus(proxied, namespace=events_namespace, reconnect_interval=0.5)
    await publisher.start()
    await consumer_bus.start()
    received = Collector()
    await consumer_bus.consume("tester", ["customer.created"], received)
    relay = OutboxRelay(pg_db, publisher, service="test", poll_interval=0.1, publish_timeout=1)
    pg_db.outbox_listeners.append(relay.wake)
    task = asyncio.create_task(relay.run())
    try:
        before = [event(phase="before") for _ in range(5)]
        async with pg_db.transaction() as s:
            await add_events(s, *before)
        await eventually(lambda: _async(len(received.events) == 5), timeout=10)

        await proxy.cut()
        during = [event(phase="during") for _ in range(20)]
        for e in during:  # the write path never waits on the broker
            async with pg_db.transaction() as s:
                await s.execute(insert(effects).values(event_id=e.id))
                await add_events(s, e)
        await asyncio.sleep(1.5)
        assert len(received.events) == 5
        async with pg_db.transaction() as s:
            written = (await s.execute(select(func.count()).select_from(effects))).scalar_one()
        assert written == 20

        await proxy.restore()
        await eventually(lambda: _async(len(set(received.ids())) == 25), timeout=30)
        assert {e.id for e in during} <= set(received.ids())
    finally:
        task.cancel()
        await proxy.cut()
        await publisher.close()
        await consumer_bus.close()
        await delete_topology(amqp_url, events_namespace)


async def test_a_duplicate_delivery_has_no_second_effect(bus, pg_db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    dispatch = idempotent_dispatcher(pg_db, "tester", {"customer.created": record})
    done = asyncio.Event()

    async def handler(e):
        await dispatch(e)
        done.set()

    await bus.consume("tester", ["customer.created"], handler)
    e = event()
    # The same event published twice, as a relay that lost a confirm would.
    assert await bus.publish([e], timeout=5) == [None]
    assert await bus.publish([e], timeout=5) == [None]
    other = event()
    assert await bus.publish([other], timeout=5) == [None]

    async def effect_count():
        async with pg_db.transaction() as s:
            return (await s.execute(select(func.count()).select_from(effects))).scalar_one()

    await eventually(lambda: _eq(effect_count(), 2), timeout=10)
    await asyncio.sleep(0.3)
    assert await effect_count() == 2


async def _eq(awaitable, expected):
    return (await awaitable) == expected


class CountingBatches:
    """A dispatcher that records the size of each batch it is handed."""

    def __init__(self, dispatch):
        self.dispatch = dispatch
        self.batches: list[int] = []

    async def __call__(self, e):
        return await self.dispatch(e)

    async def apply_batch(self, events):
        self.batches.append(len(events))
        return await self.dispatch.apply_batch(events)


@pytest.fixture
async def batching_bus(amqp_url, events_namespace):
    bus = RabbitBus(amqp_url, namespace=events_namespace, delivery_limit=2, prefetch=2, batch_size=8)
    await bus.start()
    yield bus
    await bus.close()
    await delete_topology(amqp_url, events_namespace)


async def _effect_ids(db, effects) -> list[uuid.UUID]:
    async with db.transaction() as s:
        return list((await s.execute(select(effects.c.event_id))).scalars())


async def test_a_backlog_is_applied_in_batches_each_event_once_and_all_acknowledged(
    batching_bus, pg_db, effects, amqp_url, events_namespace
):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    handler = CountingBatches(idempotent_dispatcher(pg_db, "tester", {"customer.created": record}))
    await batching_bus.declare("tester", ["customer.created"])
    backlog = [event(i=i) for i in range(40)]
    # One of them twice, as a relay that lost a confirm would publish it.
    assert await batching_bus.publish([*backlog, backlog[7]], timeout=5) == [None] * 41
    await batching_bus.consume("tester", ["customer.created"], handler)

    await eventually(lambda: _eq(_effect_count(pg_db, effects), 40), timeout=10)
    assert sorted(await _effect_ids(pg_db, effects)) == sorted(e.id for e in backlog)
    assert max(handler.batches) > 1 and max(handler.batches) <= 8
    # Every delivery was acknowledged: once the consumer is gone, nothing goes back to the queue.
    await asyncio.sleep(0.3)
    await batching_bus.close()
    assert await _ready_messages(amqp_url, events_namespace) == 0
    assert await _effect_count(pg_db, effects) == 40


async def test_a_failing_event_in_a_batch_is_dead_lettered_alone_and_the_rest_applied(
    batching_bus, pg_db, effects
):
    async with pg_db.engine.begin() as conn:
        await conn.run_sync(dead_letters.metadata.create_all)
    poison = event()
    attempts = []

    async def record(session, e):
        if e.id == poison.id:
            attempts.append(1)
            raise ValueError("cannot handle this one")
        await session.execute(insert(effects).values(event_id=e.id))

    handler = CountingBatches(idempotent_dispatcher(pg_db, "tester", {"customer.created": record}))
    await batching_bus.declare("tester", ["customer.created"])
    others = [event(i=i) for i in range(20)]
    assert await batching_bus.publish([*others[:10], poison, *others[10:]], timeout=5) == [None] * 21
    await batching_bus.consume(
        "tester", ["customer.created"], handler, dead_letter=dead_letters.recorder(pg_db, "tester")
    )

    rows = await eventually(lambda: dead_letters.stored(pg_db), timeout=20)
    assert [r.event_id for r in rows] == [poison.id]
    assert rows[0].attempts == 3  # delivery limit 2: the first delivery and two redeliveries
    assert sorted(await _effect_ids(pg_db, effects)) == sorted(e.id for e in others)
    assert max(handler.batches) > 1


async def _effect_count(db, effects) -> int:
    return len(await _effect_ids(db, effects))
