"""Per-aggregate ordering where asked (`orderedByAggregate`): while the first event of a record keeps
failing, that record's later events wait behind it and arrive after it; other records are not held."""

import json
import uuid

from crm_common.events.envelope import new_event
from crm_common.testing.plugin import eventually, running
from webhook_svc.app import create_app

from .conftest import World, customer_created, with_fake_dns

# Retries every 0.2 s for long enough that the failing event is still PENDING while we look.
PATIENT_SCHEDULE = [0] + [0.2] * 60


def renamed(customer_id, name):
    return new_event(
        "customer.updated",
        service="customer",
        subject=customer_id,
        data={
            "customerId": str(customer_id),
            "customerNumber": "CUST-2026-000003",
            "fullName": name,
            "status": "LEAD",
            "changes": {"fullName": name},
        },
        sequence=2,
    )


def name_of(request) -> str:
    return json.loads(request.body)["data"]["fullName"]


async def test_a_failing_aggregate_holds_only_its_own_later_events(settings_for, bus, auth_headers, receiver):
    failing = {"X1"}
    receiver.status_for = lambda r: 503 if name_of(r) in failing else 200
    app = create_app(settings_for(retry_schedule_seconds=PATIENT_SCHEDULE), bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        world = World(client, bus, auth_headers)
        hook = await world.subscribe(receiver.url, ["customer.*"], orderedByAggregate=True)
        assert hook["orderedByAggregate"] is True
        x, y = uuid.uuid4(), uuid.uuid4()
        for event in (
            customer_created("X1", customer_id=x),
            renamed(x, "X2"),
            customer_created("Y1", customer_id=y),
            renamed(x, "X3"),
            renamed(y, "Y2"),
        ):
            await world.publish(event)

        def arrived():
            return [name_of(r) for r in receiver.received]

        # Y's events go out while X1 keeps failing; X2 and X3 wait behind it.
        async def y_through_and_x1_retried():
            got = arrived()
            return {"Y1", "Y2"} <= set(got) and got.count("X1") >= 3

        assert await eventually(y_through_and_x1_retried)
        assert {"X2", "X3"}.isdisjoint(arrived())

        failing.clear()

        async def x_through():
            return {"X2", "X3"} <= set(arrived())

        assert await eventually(x_through)
        got = arrived()
        x_order = [n for n in got if n.startswith("X")]
        # Every X1 attempt (the failed ones and the success) before X2, X2 before X3, each once.
        assert x_order[-2:] == ["X2", "X3"] and set(x_order[:-2]) == {"X1"}

        # A delivery is recorded DELIVERED once its answer is back, a moment after the receiver
        # has the request.
        async def all_delivered():
            r = await client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=world.admin)
            return {d["state"] for d in r.json()["items"]} == {"DELIVERED"}

        assert await eventually(all_delivered)


async def test_the_flag_is_off_by_default_and_can_be_switched(world: World, receiver):
    hook = await world.subscribe(receiver.url, ["customer.*"])
    assert hook["orderedByAggregate"] is False
    r = await world.client.patch(
        f"/api/v1/webhooks/{hook['id']}",
        json={"orderedByAggregate": True, "version": hook["version"]},
        headers=world.admin,
    )
    assert r.status_code == 200 and r.json()["orderedByAggregate"] is True
