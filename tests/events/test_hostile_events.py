"""Every consumer survives malformed and hostile events (issue 12): each ends as a dead letter with
its reason in the consumer's own table (or, for a type it has no handler for, is acknowledged and
ignored, as docs/events.md says), at once and without a redelivery loop, and a good event sent after
them is still applied. On the in-process bus of the embedded default and on RabbitMQ."""

import importlib
import json
import os
import uuid

import aio_pika
import pytest
import sqlalchemy as sa
from crm_common.contracts.catalogue import by_routing_key
from crm_common.contracts.identity import UserCreated
from crm_common.events import dead_letters
from crm_common.events.acceptance import MAX_EVENT_BYTES
from crm_common.events.bus import UnroutableError
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.envelope import CloudEvent, event_from, new_event
from crm_common.events.tables import inbox, outbox
from crm_common.testing.plugin import eventually, running
from sqlalchemy.ext.asyncio import create_async_engine

CONSUMERS = tuple(SUBSCRIPTIONS)
# A type each consumer handles with its own code (the user directory is shared by all of them).
OWN_TYPE = {
    "customer": "opportunity.won",
    "pipeline": "customer.created",
    "activity": "ticket.created",
    "ticket": "customer.merged",
    "campaign": "opportunity.won",
    "webhook": "campaign.activated",
}
ADMIN, PASSWORD = "boss@example.com", "correct horse battery staple"


def good_user(name="Grace Hopper") -> CloudEvent:
    user_id = uuid.uuid4()
    payload = UserCreated(
        user_id=user_id,
        email=f"{user_id.hex[:8]}@example.com",
        full_name=name,
        roles=["sales"],
        is_active=True,
    )
    return event_from(payload, service="gateway", subject=user_id, sequence=1)


def wrong_types(key: str) -> CloudEvent:
    """Every field of the contract holds an object where a string, number or id belongs."""
    fields = [f.alias or n for n, f in by_routing_key()[key].model_fields.items()]
    data = {name: {"wrong": [1, 2]} for name in fields}
    return new_event(key, service="test", subject=uuid.uuid4(), data=data, sequence=1)


def huge() -> CloudEvent:
    event = good_user()
    return event.model_copy(update={"data": {**event.data, "bio": "x" * (MAX_EVENT_BYTES + 1)}})


def next_version() -> CloudEvent:
    event = good_user()
    return event.model_copy(update={"dataschema": "urn:crm:events:user.created:v2"})


async def letters(db, consumer) -> dict[uuid.UUID, tuple[str, int]]:
    """event id -> (first line of the error, attempts)."""
    rows = await dead_letters.stored(db, consumer=consumer)
    return {r.event_id: (r.error.splitlines()[0], r.attempts) for r in rows}


async def applied(db, consumer, event_id) -> bool:
    async with db.transaction(read_only=True) as s:
        query = sa.select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
        return (await s.execute(query)).first() is not None


def expect_refused(found: dict, event: CloudEvent, *words: str) -> None:
    assert event.id in found, f"{event.type} {event.id} not dead-lettered: {list(found.values())}"
    error, attempts = found[event.id]
    assert attempts == 1, (error, attempts)  # at once: no retry can mend it
    for word in words:
        assert word in error, error


# --- the embedded default: the in-process bus ------------------------------------------------------


@pytest.fixture
async def embedded(tmp_path, monkeypatch):
    from crm_gateway.embedded import create_embedded_app
    from crm_gateway.settings import GatewaySettings

    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    app = create_embedded_app(GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN))
    async with running(app) as client:
        r = await client.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        client.app = app
        yield client


def runtime(client, service):
    return client.app.state.services[service].state.runtime


async def test_the_in_process_bus_dead_letters_hostile_events_and_keeps_applying_good_ones(embedded):
    bus = runtime(embedded, "customer").bus
    bus.retry_delay = 0.01  # should anything be retried after all, the test does not wait long for it
    wrong = {key: wrong_types(key) for key in set(OWN_TYPE.values()) | {"user.created"}}
    too_big, v2 = huge(), next_version()
    unknown = new_event("gizmo.exploded", service="test", subject="x", data={})

    hostile = [*wrong.values(), too_big, v2]
    # Each publish resolves once every subscriber applied it or recorded it as a dead letter.
    assert await bus.publish(hostile, timeout=30) == [None] * len(hostile)
    # A type nobody handles reaches no consumer at all: the relay would keep it as UNROUTED.
    (result,) = await bus.publish([unknown], timeout=5)
    assert isinstance(result, UnroutableError)
    good = good_user()
    assert await bus.publish([good], timeout=30) == [None]

    for consumer in CONSUMERS:
        db = runtime(embedded, consumer).db
        found = await letters(db, consumer)
        for key, event in wrong.items():
            if key in SUBSCRIPTIONS[consumer]:
                expect_refused(found, event, "PermanentEventError", "breaks its contract")
            else:
                assert event.id not in found, consumer
        expect_refused(found, too_big, "PermanentEventError", f"exceeds the {MAX_EVENT_BYTES}-byte limit")
        expect_refused(found, v2, "PermanentEventError", "urn:crm:events:user.created:v2")
        assert await applied(db, consumer, good.id), consumer
        for event in hostile:
            assert not await applied(db, consumer, event.id), (consumer, event.type)


async def test_an_outbox_row_that_is_not_an_event_is_set_aside_and_the_rest_flows(embedded):
    customer = runtime(embedded, "customer")
    async with customer.db.transaction() as s:
        await s.execute(
            sa.insert(outbox).values(
                event_id=uuid.uuid4(),
                routing_key="customer.created",
                payload={"hello": "world"},
                created_at=sa.func.now(),
                state="PENDING",
                attempts=0,
            )
        )
    r = await embedded.post(
        "/api/v1/customers", json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.org"}
    )
    assert r.status_code == 201, r.text

    async def states():
        async with customer.db.transaction(read_only=True) as s:
            rows = (
                await s.execute(sa.select(outbox.c.routing_key, outbox.c.state, outbox.c.last_error))
            ).all()
        return None if any(r.state == "PENDING" for r in rows) else rows

    rows = await eventually(states, timeout=20)
    assert rows, "outbox rows still pending"
    bad = [r for r in rows if r.state == "FAILED"]
    assert len(bad) == 1 and bad[0].last_error.startswith("not a CloudEvent:"), rows
    assert {r.state for r in rows if r not in bad} == {"PUBLISHED"}

    async def noted():
        r = await embedded.get("/api/v1/activities", params={"customerId": customer_id})
        return r.json()["total"] >= 1

    customer_id = r.json()["id"]
    assert await eventually(noted, timeout=20)


# --- distributed: RabbitMQ and Postgres -------------------------------------------------------------


@pytest.fixture
async def distributed(postgres_url, amqp_url, events_namespace, monkeypatch):
    """Every consuming service as its own app on Postgres (a schema each) and one RabbitMQ."""
    from contextlib import AsyncExitStack

    from crm_common.db import async_url

    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)
    prefix = f"t_{uuid.uuid4().hex[:8]}"
    apps = {}
    try:
        async with AsyncExitStack() as stack:
            for name in CONSUMERS:
                settings = importlib.import_module(f"{name}_svc.settings").Settings(
                    database_url=postgres_url,
                    db_schema=f"{prefix}_{name}",
                    amqp_url=amqp_url,
                    events_namespace=events_namespace,
                    data_dir=os.devnull,
                )
                app = importlib.import_module(f"{name}_svc.app").create_app(settings)
                await stack.enter_async_context(running(app))
                apps[name] = app
            yield apps
    finally:
        engine = create_async_engine(async_url(postgres_url))
        async with engine.begin() as conn:
            for name in CONSUMERS:
                await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{prefix}_{name}" CASCADE'))
        await engine.dispose()
        async with await aio_pika.connect(amqp_url) as connection:
            for name in CONSUMERS:
                channel = await connection.channel()
                await channel.queue_delete(f"{events_namespace}{name}.events")
                await channel.queue_delete(f"{events_namespace}{name}.events.dlq")
            channel = await connection.channel()
            await channel.exchange_delete(f"{events_namespace}crm.events")
            await channel.exchange_delete(f"{events_namespace}crm.events.dlx")


def message(body: bytes | CloudEvent, **properties) -> aio_pika.Message:
    if isinstance(body, CloudEvent):
        body = body.to_json()
    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, **properties)


@pytest.mark.integration
async def test_rabbitmq_consumers_dead_letter_hostile_messages_and_keep_applying_good_ones(
    distributed, amqp_url, events_namespace
):
    not_json = b"\x00\xff{not json at all"
    not_an_event = json.dumps({"hello": "world", "id": 3}).encode()
    sent = {}
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        for name in CONSUMERS:
            queue = f"{events_namespace}{name}.events"
            cases = {
                "not json": not_json + name.encode(),
                "not an event": not_an_event,
                "wrong types": wrong_types(OWN_TYPE[name]),
                "wrong directory types": wrong_types("user.created"),
                "huge": huge(),
                "next version": next_version(),
                "unknown type": new_event("gizmo.exploded", service="test", subject="x", data={}),
                "good": good_user(),
            }
            for case, body in cases.items():
                # A publisher may set the header the quorum queue counts redeliveries in, to anything.
                headers = {"x-delivery-count": "many"} if case == "wrong types" else None
                await channel.default_exchange.publish(message(body, headers=headers), routing_key=queue)
            sent[name] = cases

    for name, app in distributed.items():
        db = app.state.runtime.db
        cases = sent[name]

        async def settled(db=db, name=name, good=cases["good"].id):
            # Handled concurrently (prefetch): the good one may be applied before the others are done.
            return await applied(db, name, good) and len(await letters(db, name)) >= 6

        assert await eventually(settled, timeout=30), name
        found = await letters(db, name)
        by_id = {dead_letters.unreadable_id(cases["not json"]): "not json"}
        by_id[dead_letters.unreadable_id(cases["not an event"])] = "not an event"
        unreadable = {by_id[k]: v for k, v in found.items() if k in by_id}
        assert unreadable["not json"][0].startswith("UnreadableMessage: not a CloudEvents 1.0 JSON event")
        assert unreadable["not an event"][0].startswith("UnreadableMessage: not a CloudEvents 1.0 JSON event")
        assert unreadable["not an event"][1] == 1
        expect_refused(found, cases["wrong types"], "PermanentEventError", "breaks its contract")
        expect_refused(found, cases["wrong directory types"], "PermanentEventError", "breaks its contract")
        huge_id = dead_letters.unreadable_id(cases["huge"].to_json())
        assert found[huge_id] == (
            f"UnreadableMessage: message of {len(cases['huge'].to_json())} bytes exceeds the "
            f"{MAX_EVENT_BYTES}-byte limit",
            1,
        )
        expect_refused(found, cases["next version"], "urn:crm:events:user.created:v2")
        assert len(found) == 6, found  # the unknown type was acknowledged and ignored
        for case in ("wrong types", "next version", "unknown type"):
            assert not await applied(db, name, cases[case].id)
        rows = await dead_letters.stored(db, consumer=name)
        kept = next(
            r for r in rows if r.event_type == dead_letters.UNREADABLE_TYPE and r.payload["size"] > 1000
        )
        assert len(kept.payload["head"]) == dead_letters.UNREADABLE_KEPT_BYTES

    # Nothing stuck: every queue is empty (all acknowledged) and nothing went to the broker's DLQ.
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        for name in CONSUMERS:
            for queue in (f"{events_namespace}{name}.events", f"{events_namespace}{name}.events.dlq"):
                declared = await channel.declare_queue(queue, passive=True)
                assert declared.declaration_result.message_count == 0, queue
