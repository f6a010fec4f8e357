"""Deliveries to a real HTTP receiver: signed per Standard Webhooks (verified with the
`standardwebhooks` package), retried with backoff, logged, replayed, and switched off after a long
failure streak."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from crm_common.events.envelope import new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import inbox, outbox
from crm_common.testing.plugin import eventually, running
from sqlalchemy import select, update
from standardwebhooks import Webhook
from webhook_svc.app import create_app
from webhook_svc.models import Delivery

from .conftest import TEST_SCHEDULE, World, customer_created, opportunity_event, with_fake_dns

API = "/api/v1/webhooks"


def verified(secret: str, request) -> dict:
    """The body, once `standardwebhooks` accepts its signature (raises otherwise)."""
    return Webhook(secret).verify(request.body, request.headers)


async def deliveries_of(world: World, webhook_id: str, **params) -> list[dict]:
    r = await world.client.get(f"{API}/{webhook_id}/deliveries", params=params, headers=world.admin)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_subscribed_events_arrive_signed_and_others_do_not(world: World, receiver):
    hook = await world.subscribe(receiver.url, ["customer.*", "opportunity.won"])
    wanted = [customer_created(), opportunity_event("opportunity.won")]
    await world.publish(opportunity_event("opportunity.lost"), *wanted)
    got = await receiver.wait_for(2)
    await asyncio.sleep(0.3)  # anything else queued would have gone out by now
    assert len(receiver.received) == 2
    bodies = sorted((verified(hook["secret"], r) for r in got), key=lambda b: b["type"])
    assert [b["type"] for b in bodies] == ["crm.customer.created", "crm.opportunity.won"]
    for body, event in zip(bodies, sorted(wanted, key=lambda e: e.type), strict=True):
        assert body == json.loads(event.to_json())
        assert body["specversion"] == "1.0" and body["id"] == str(event.id)
    request = got[0]
    assert request.headers["webhook-id"] == json.loads(request.body)["id"]
    assert request.headers["content-type"] == "application/cloudevents+json"
    # A signature made with another secret is refused by the same library.
    with pytest.raises(Exception, match="signature"):
        verified("whsec_" + "A" * 43, request)

    # Recorded DELIVERED once each answer is back, a moment after the receiver has the request.
    async def all_delivered():
        return {d["state"] for d in await deliveries_of(world, hook["id"])} == {"DELIVERED"}

    assert await eventually(all_delivered)
    log = await deliveries_of(world, hook["id"])
    assert {d["eventType"] for d in log} == {"customer.created", "opportunity.won"}


async def test_a_redelivered_event_is_sent_once(world: World, receiver):
    await world.subscribe(receiver.url)
    event = customer_created()
    await world.publish(event)
    await world.publish(event)
    await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_an_event_nobody_wants_is_only_recorded_and_later_subscriptions_get_what_follows(
    world: World, receiver
):
    """Events no active subscription matches queue no delivery, but are in the inbox
    (a redelivery is a duplicate, a consistency token naming them waits for nothing); a subscription
    created afterwards gets every event from then on."""
    unwanted = customer_created("Before Anyone")
    await world.publish(unwanted)
    async with world.client.app.state.runtime.db.transaction(read_only=True) as s:
        seen = (await s.execute(select(inbox.c.event_id).where(inbox.c.consumer == "webhook"))).scalars()
        assert unwanted.id in set(seen)
    assert await world.count() == 0
    await world.subscribe(receiver.url, ["customer.*"])
    await world.publish(unwanted, customer_created("After The Subscription"))
    (got,) = await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1
    assert json.loads(got.body)["data"]["fullName"] == "After The Subscription"


async def test_the_filter_selects_events(world: World, receiver):
    await world.subscribe(receiver.url, ["customer.*"], filter={"data.status": ["CUSTOMER"]})
    await world.publish(customer_created("Lead Only"), customer_created("Real One", status="CUSTOMER"))
    (got,) = await receiver.wait_for(1)
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1
    assert json.loads(got.body)["data"]["fullName"] == "Real One"


async def test_the_backlog_arrives_once_the_receiver_is_back(world: World, receiver):
    hook = await world.subscribe(receiver.url)
    await receiver.stop()
    events = [customer_created(f"Customer {i}") for i in range(5)]
    await world.publish(*events)

    async def failed_attempts():
        log = await deliveries_of(world, hook["id"])
        return len(log) == 5 and all(d["totalAttempts"] >= 2 for d in log)

    assert await eventually(failed_attempts)
    one = (await deliveries_of(world, hook["id"]))[0]
    detail = (
        await world.client.get(f"{API}/{hook['id']}/deliveries/{one['id']}", headers=world.admin)
    ).json()
    assert detail["state"] == "PENDING"
    assert all(not a["success"] and "could not connect" in a["error"] for a in detail["attemptLog"])
    health = (await world.client.get(f"{API}/{hook['id']}", headers=world.admin)).json()["health"]
    assert health["consecutiveFailures"] >= 10 and health["failingSince"] is not None

    await receiver.start()
    got = await receiver.wait_for(5)
    ids = sorted(json.loads(verified(hook["secret"], r) and r.body)["id"] for r in got)
    assert ids == sorted(str(e.id) for e in events)

    async def all_delivered():
        return {d["state"] for d in await deliveries_of(world, hook["id"])} == {"DELIVERED"}

    assert await eventually(all_delivered)
    health = (await world.client.get(f"{API}/{hook['id']}", headers=world.admin)).json()["health"]
    assert health["consecutiveFailures"] == 0 and health["lastSuccessAt"] is not None


async def test_every_attempt_is_logged_with_status_latency_and_an_excerpt(world: World, receiver):
    receiver.status = 500
    receiver.answer = b"x" * 5000
    hook = await world.subscribe(receiver.url)
    await world.publish(customer_created())

    async def failed():
        log = await deliveries_of(world, hook["id"])
        return log and log[0]["state"] == "FAILED" and log

    (delivery,) = await eventually(failed)
    assert delivery["attempts"] == 5 and delivery["lastStatusCode"] == 500
    assert delivery["nextAttemptAt"] is None
    detail = (
        await world.client.get(f"{API}/{hook['id']}/deliveries/{delivery['id']}", headers=world.admin)
    ).json()
    attempts = detail["attemptLog"]
    assert len(attempts) == 5 == len(receiver.received)
    assert all(a["statusCode"] == 500 and a["latencyMs"] >= 0 and not a["success"] for a in attempts)
    assert all(a["responseExcerpt"] == "x" * 1024 for a in attempts)
    # The schedule's backoff: each attempt waited at least its step of the schedule (lower bounds only).
    times = [datetime.fromisoformat(a["attemptedAt"]) for a in attempts]
    gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
    assert all(gap >= wait for gap, wait in zip(gaps, TEST_SCHEDULE[1:], strict=True)), gaps
    assert detail["payload"]["type"] == "crm.customer.created"


async def test_redirects_are_not_followed(world: World, receiver):
    receiver.status = 307
    receiver.extra_headers = [(b"location", b"http://169.254.169.254/latest/meta-data/")]
    hook = await world.subscribe(receiver.url)
    await world.publish(customer_created())
    await receiver.wait_for(1)

    async def attempted():
        log = await deliveries_of(world, hook["id"])
        return log and log[0]["lastError"] and log[0]

    delivery = await eventually(attempted)
    assert delivery["lastStatusCode"] == 307
    assert "redirects are not followed" in delivery["lastError"]
    assert delivery["state"] == "PENDING"  # a failure: retried, never followed


async def test_replay_of_one_delivery_and_of_a_range(world: World, receiver):
    hook = await world.subscribe(receiver.url)
    started = datetime.now(UTC)
    await world.publish(customer_created("A"), customer_created("B"))
    await receiver.wait_for(2)

    async def delivered():
        log = await deliveries_of(world, hook["id"], state="DELIVERED")
        return len(log) == 2 and log

    first, _ = await eventually(delivered)
    r = await world.client.post(f"{API}/{hook['id']}/deliveries/{first['id']}/replay", headers=world.admin)
    assert r.status_code == 202, r.text
    assert r.json()["replayedAt"] is not None
    got = await receiver.wait_for(3)
    assert json.loads(got[2].body)["id"] == first["eventId"]
    assert got[2].headers["webhook-id"] == first["eventId"]
    verified(hook["secret"], got[2])
    await eventually(delivered)  # the replay's outcome is recorded

    r = await world.client.post(
        f"{API}/{hook['id']}/replay",
        json={"since": started.isoformat(), "states": ["DELIVERED", "FAILED"]},
        headers=world.admin,
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"queued": 2}
    await receiver.wait_for(5)
    # A range before the deliveries queues nothing; a reversed one is refused.
    earlier = (started - timedelta(hours=1)).isoformat()
    r = await world.client.post(
        f"{API}/{hook['id']}/replay",
        json={"since": earlier, "until": started.isoformat()},
        headers=world.admin,
    )
    assert r.json() == {"queued": 0}
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await world.client.post(
        f"{API}/{hook['id']}/replay", json={"since": later, "until": started.isoformat()}, headers=world.admin
    )
    assert r.status_code == 422 and r.json()["code"] == "INVALID_RANGE"
    r = await world.client.post(f"{API}/{hook['id']}/deliveries/{uuid.uuid4()}/replay", headers=world.admin)
    assert r.status_code == 404


async def test_after_a_rotation_both_secrets_verify_until_the_old_one_expires(world: World, receiver):
    hook = await world.subscribe(receiver.url)
    r = await world.client.post(
        f"{API}/{hook['id']}/rotate-secret", json={"graceSeconds": 3600}, headers=world.admin
    )
    new_secret = r.json()["secret"]
    await world.publish(customer_created())
    (got,) = await receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verified(hook["secret"], got)
    verified(new_secret, got)

    r = await world.client.post(
        f"{API}/{hook['id']}/rotate-secret", json={"graceSeconds": 0}, headers=world.admin
    )
    newest = r.json()["secret"]
    await world.publish(customer_created())
    got = (await receiver.wait_for(2))[1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    verified(newest, got)
    with pytest.raises(Exception, match="signature"):
        verified(new_secret, got)


async def test_a_long_failure_streak_disables_the_webhook_with_an_event(
    settings_for, bus, auth_headers, receiver
):
    app = create_app(settings_for(disable_after_hours=0, disable_after_failures=3), bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        world = World(client, bus, auth_headers)
        client.app = app
        receiver.status = 503
        hook = await world.subscribe(receiver.url)
        await world.publish(customer_created(), customer_created())

        async def disabled():
            body = (await client.get(f"{API}/{hook['id']}", headers=world.admin)).json()
            return not body["active"] and body

        body = await eventually(disabled)
        assert body["disabledReason"] == "FAILURE_STREAK" and body["disabledAt"] is not None
        assert body["health"]["consecutiveFailures"] >= 3
        async with app.state.runtime.db.transaction(read_only=True) as s:
            rows = (
                await s.execute(select(outbox.c.payload).where(outbox.c.routing_key == "webhook.disabled"))
            ).all()
        (event,) = [r.payload for r in rows]
        assert event["subject"] == hook["id"]
        assert event["data"]["reason"] == "FAILURE_STREAK" and event["data"]["url"] == receiver.url
        # Disabled: nothing more is attempted, and events that come now are not queued.
        await asyncio.sleep(0.3)
        seen = len(receiver.received)
        await world.publish(customer_created())
        await asyncio.sleep(0.5)
        assert len(receiver.received) == seen
        r = await client.post(
            f"{API}/{hook['id']}/replay", json={"since": "2020-01-01T00:00:00Z"}, headers=world.admin
        )
        assert r.status_code == 409 and r.json()["code"] == "WEBHOOK_INACTIVE"
        # Activated again: what was still queued goes out.
        receiver.status = 200
        r = await client.patch(
            f"{API}/{hook['id']}", json={"active": True, "version": body["version"]}, headers=world.admin
        )
        assert r.status_code == 200, r.text
        assert r.json()["health"]["consecutiveFailures"] == 0


async def test_dns_rebinding_is_refused_at_delivery_time(world: World, receiver):
    """The name was public when subscribed; at delivery it resolves to the metadata address."""
    dns = world.client.app.state.dns
    dns.names["rebind.example.com"] = ["93.184.216.34"]
    hook = await world.subscribe(f"http://rebind.example.com:{receiver.port}/hooks")
    dns.names["rebind.example.com"] = ["169.254.169.254"]
    await world.publish(customer_created())

    async def refused():
        log = await deliveries_of(world, hook["id"])
        return log and log[0]["lastError"] and log[0]

    delivery = await eventually(refused)
    assert "refused" in delivery["lastError"] and "metadata" in delivery["lastError"]
    assert delivery["lastStatusCode"] is None
    # ... and the explicit test send answers the refusal as a problem, sending nothing.
    r = await world.client.post(f"{API}/{hook['id']}/test", headers=world.admin)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    # Rebinding to a loopback name that is not allowed either: 10.0.0.1 is private.
    dns.names["rebind.example.com"] = ["10.0.0.1"]
    r = await world.client.post(f"{API}/{hook['id']}/test", headers=world.admin)
    assert r.status_code == 422 and "private" in r.json()["detail"]
    assert receiver.received == []


async def test_the_test_endpoint_sends_a_signed_ping(world: World, receiver):
    hook = await world.subscribe(receiver.url)
    r = await world.client.post(f"{API}/{hook['id']}/test", headers=world.admin)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["success"] is True and result["statusCode"] == 200
    (got,) = receiver.received
    body = verified(hook["secret"], got)
    assert body["type"] == "crm.webhook.ping" and body["subject"] == hook["id"]
    (logged,) = await deliveries_of(world, hook["id"])
    assert logged["id"] == result["deliveryId"] and logged["eventType"] == "webhook.ping"
    receiver.status = 404
    r = await world.client.post(f"{API}/{hook['id']}/test", headers=world.admin)
    assert r.json()["success"] is False and r.json()["statusCode"] == 404
    assert (await world.client.post(f"{API}/{uuid.uuid4()}/test", headers=world.admin)).status_code == 404


async def test_webhook_disabled_events_reach_other_subscriptions(world: World, receiver):
    """webhook-svc consumes its own `webhook.disabled` like any event."""
    hook = await world.subscribe(receiver.url, ["webhook.disabled"])
    event = new_event(
        "webhook.disabled",
        service="webhook",
        subject=uuid.uuid4(),
        data={
            "webhookId": str(uuid.uuid4()),
            "url": "https://hooks.example.com/x",
            "reason": "FAILURE_STREAK",
            "consecutiveFailures": 15,
            "disabledAt": datetime.now(UTC).isoformat(),
        },
    )
    await world.publish(event)
    (got,) = await receiver.wait_for(1)
    assert verified(hook["secret"], got)["type"] == "crm.webhook.disabled"


async def test_a_slow_receiver_times_out_and_is_retried(settings_for, bus, auth_headers, receiver):
    app = create_app(settings_for(timeout_seconds=0.3), bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        world = World(client, bus, auth_headers)
        receiver.delay = 2
        hook = await world.subscribe(receiver.url)
        await world.publish(customer_created())

        async def timed_out():
            log = await deliveries_of(world, hook["id"])
            return log and log[0]["lastError"] and log[0]

        delivery = await eventually(timed_out)
        assert delivery["lastError"] == "timed out after 0.3 s"
        assert delivery["state"] == "PENDING" and delivery["lastStatusCode"] is None


async def test_queued_deliveries_survive_a_restart(settings_for, auth_headers, receiver):
    """The deliveries table is the queue: what was owed when the service stopped goes out after it
    starts again."""
    settings = settings_for(retry_schedule_seconds=[0, 3600])
    await receiver.stop()
    bus = MemoryBus(consumers={"webhook"})
    app = create_app(settings, bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        world = World(client, bus, auth_headers)
        hook = await world.subscribe(receiver.url)
        await world.publish(customer_created("Before the restart"))

        async def failed_once():
            log = await deliveries_of(world, hook["id"])
            return log and log[0]["totalAttempts"] == 1

        assert await eventually(failed_once)
    await bus.close()
    await receiver.start()
    assert receiver.received == []

    # A new process on the same database; the hour until the next attempt passes (made due here).
    bus = MemoryBus(consumers={"webhook"})
    app = create_app(settings, bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        async with app.state.runtime.db.transaction() as s:
            await s.execute(update(Delivery).values(next_attempt_at=datetime.now(UTC)))
        app.state.webhook_worker.wake()
        (got,) = await receiver.wait_for(1)
        assert verified(hook["secret"], got)["data"]["fullName"] == "Before the restart"
    await bus.close()


async def test_the_worker_waits_while_a_slow_delivery_is_in_flight(settings_for, bus, auth_headers, receiver):
    """A leased delivery is not 'due': the worker polls, it does not spin on it."""
    app = create_app(settings_for(poll_interval=0.5, timeout_seconds=5), bus=bus)
    with_fake_dns(app)
    worker = app.state.webhook_worker
    claims = 0
    claim = worker.claim

    async def counted(limit):
        nonlocal claims
        claims += 1
        return await claim(limit)

    worker.claim = counted
    async with running(app) as client:
        world = World(client, bus, auth_headers)
        receiver.delay = 2
        await world.subscribe(receiver.url)
        await world.publish(customer_created())
        await receiver.wait_for(1)
        before = claims
        await asyncio.sleep(1.5)  # the receiver is still holding the request
        # About one claim per poll interval (3 here); a loop that took the leased row for due would
        # have claimed hundreds of times.
        assert claims - before < 30
