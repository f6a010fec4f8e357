"""Reactions to other contexts' events: opportunity totals (idempotent, any order, per currency),
won -> CUSTOMER, lastContactDate forward only."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.contracts.ticket import TicketCommunicationAdded
from crm_common.events.dead_letters import PermanentEventError
from crm_common.events.envelope import event_from
from pydantic import ValidationError

from .conftest import contact, create, deliver, opportunity_event, outbox_payloads


async def get(client, headers, customer_id):
    return (await client.get(f"/api/v1/customers/{customer_id}", headers=headers)).json()


def totals(customer):
    return customer["totalValue"], customer["lifetimeValue"], customer["valueCurrency"]


async def test_open_and_won_opportunities_make_total_and_lifetime_value(client, auth_headers):
    h = auth_headers()
    c = await create(client, h, status="PROSPECT")
    a, b, lost = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(
        client,
        opportunity_event(c["id"], opportunity_id=a, amount="100.10"),
        opportunity_event(c["id"], opportunity_id=b, amount="200.20"),
        opportunity_event(c["id"], opportunity_id=lost, amount="999.00"),
    )
    now = await get(client, h, c["id"])
    assert totals(now) == ("1299.30", "0.00", "USD")
    assert now["valueTotals"] == [{"currency": "USD", "totalValue": "1299.30", "lifetimeValue": "0.00"}]
    # Derived fields: the version (and ETag) the user edits against does not move.
    assert now["version"] == 1

    await deliver(
        client,
        opportunity_event(
            c["id"],
            opportunity_id=a,
            amount="100.10",
            status="WON",
            sequence=2,
            routing_key="opportunity.won",
        ),
        opportunity_event(
            c["id"],
            opportunity_id=lost,
            amount="999.00",
            status="LOST",
            sequence=2,
            routing_key="opportunity.lost",
        ),
        opportunity_event(
            c["id"], opportunity_id=b, amount="250.00", sequence=2, routing_key="opportunity.updated"
        ),
    )
    now = await get(client, h, c["id"])
    assert totals(now) == ("250.00", "100.10", "USD")


async def test_a_won_opportunity_makes_a_lead_or_prospect_a_customer(client, auth_headers):
    h = auth_headers()
    lead = await create(client, h)
    customer = await create(client, h, status="CUSTOMER")
    await deliver(
        client,
        opportunity_event(lead["id"], status="WON", routing_key="opportunity.won"),
        opportunity_event(customer["id"], status="WON", routing_key="opportunity.won"),
    )
    now = await get(client, h, lead["id"])
    assert now["status"] == "CUSTOMER" and now["version"] == 2 and now["lifetimeValue"] == "100.00"
    (event,) = await outbox_payloads(client, "customer.updated")
    assert event["subject"] == lead["id"] and event["sequence"] == 2
    assert event["data"]["changes"] == {"status": "CUSTOMER"} and event["data"]["updatedBy"] is None
    assert (await get(client, h, customer["id"]))["version"] == 1


async def test_an_open_opportunity_does_not_convert_and_inactive_stays_inactive(client, auth_headers):
    h = auth_headers()
    c = await create(client, h)
    await deliver(client, opportunity_event(c["id"]))
    assert (await get(client, h, c["id"]))["status"] == "LEAD"
    gone = await create(client, h)
    await client.patch(
        f"/api/v1/customers/{gone['id']}", json={"status": "INACTIVE"}, headers={**h, "If-Match": "*"}
    )
    await deliver(client, opportunity_event(gone["id"], status="WON", routing_key="opportunity.won"))
    assert (await get(client, h, gone["id"]))["status"] == "INACTIVE"


async def test_any_delivery_order_and_redelivery_end_the_same(client, auth_headers):
    h = auth_headers()
    customers = [await create(client, h) for _ in range(6)]
    for customer, order in zip(customers, itertools.permutations(range(3)), strict=True):
        opp = uuid.uuid4()
        history = [
            opportunity_event(customer["id"], opportunity_id=opp, amount="10.00", sequence=1),
            opportunity_event(
                customer["id"],
                opportunity_id=opp,
                amount="40.00",
                sequence=2,
                routing_key="opportunity.stage_changed",
            ),
            opportunity_event(
                customer["id"],
                opportunity_id=opp,
                amount="45.00",
                status="WON",
                sequence=3,
                routing_key="opportunity.won",
            ),
        ]
        shuffled = [history[i] for i in order]
        await deliver(client, *shuffled, *shuffled)  # every event twice
        # A different event carrying an older state changes nothing either.
        await deliver(
            client, opportunity_event(customer["id"], opportunity_id=opp, amount="1.00", sequence=2)
        )
        now = await get(client, h, customer["id"])
        assert totals(now) == ("0.00", "45.00", "USD"), order
        assert now["status"] == "CUSTOMER"
    # One promotion per customer, whatever the order.
    assert len(await outbox_payloads(client, "customer.updated")) == 6


async def test_totals_are_per_currency(client, auth_headers):
    h = auth_headers()
    mixed = await create(client, h)
    await deliver(
        client,
        opportunity_event(mixed["id"], amount="100.00", currency="USD"),
        opportunity_event(mixed["id"], amount="70.00", currency="EUR"),
        opportunity_event(
            mixed["id"], amount="5.00", currency="EUR", status="WON", routing_key="opportunity.won"
        ),
    )
    now = await get(client, h, mixed["id"])
    assert totals(now) == ("100.00", "0.00", "USD")  # never 175: amounts of two currencies are not added
    assert now["valueTotals"] == [
        {"currency": "EUR", "totalValue": "70.00", "lifetimeValue": "5.00"},
        {"currency": "USD", "totalValue": "100.00", "lifetimeValue": "0.00"},
    ]
    euro_only = await create(client, h)
    await deliver(client, opportunity_event(euro_only["id"], amount="12.34", currency="EUR"))
    assert totals(await get(client, h, euro_only["id"])) == ("12.34", "0.00", "EUR")


async def test_an_opportunity_moving_to_another_customer_moves_its_amount(client, auth_headers):
    h = auth_headers()
    a, b = await create(client, h), await create(client, h)
    opp = uuid.uuid4()
    await deliver(client, opportunity_event(a["id"], opportunity_id=opp, amount="80.00"))
    await deliver(
        client,
        opportunity_event(
            b["id"], opportunity_id=opp, amount="80.00", sequence=2, routing_key="opportunity.updated"
        ),
    )
    assert totals(await get(client, h, a["id"]))[0] == "0.00"
    assert totals(await get(client, h, b["id"]))[0] == "80.00"


async def test_events_for_a_merged_customer_count_for_the_primary(client, auth_headers):
    h = auth_headers()
    p, s = await create(client, h), await create(client, h)
    await client.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": p["id"], "secondaryCustomerId": s["id"]},
        headers=h,
    )
    await deliver(
        client, opportunity_event(s["id"], amount="30.00"), contact(s["id"], "2030-05-05T10:00:00Z")
    )
    now = await get(client, h, p["id"])
    assert now["totalValue"] == "30.00" and now["lastContactDate"].startswith("2030-05-05T10:00:00")
    assert (await get(client, h, s["id"]))["totalValue"] == "0.00"


async def test_concurrent_opportunity_events_for_one_customer_add_up(client, auth_headers):
    h = auth_headers()
    c = await create(client, h)
    events = [opportunity_event(c["id"], amount=f"{i}.01") for i in range(1, 21)]
    await deliver(client, *events, concurrently=True)
    assert (await get(client, h, c["id"]))["totalValue"] == "210.20"  # 1.01 + 2.01 + ... + 20.01


async def test_events_for_unknown_customers_are_kept_harmlessly(client, auth_headers):
    stranger = uuid.uuid4()
    await deliver(client, opportunity_event(stranger), contact(stranger, "2030-01-01T00:00:00Z"))


async def test_a_malformed_event_fails_and_changes_nothing(client, auth_headers):
    h = auth_headers()
    c = await create(client, h)
    broken = opportunity_event(c["id"])
    broken.data["amount"] = "lots"
    # A contract violation fails the same way every time: permanent, dead-lettered without retries.
    with pytest.raises(PermanentEventError) as failed:
        await deliver(client, broken)
    assert isinstance(failed.value.__cause__, ValidationError)
    assert (await get(client, h, c["id"]))["totalValue"] == "0.00"


def message(customer_id, at, *, internal=False):
    payload = TicketCommunicationAdded(
        ticket_id=uuid.uuid4(),
        communication_id=uuid.uuid4(),
        customer_id=customer_id,
        direction="INBOUND",
        channel="EMAIL",
        internal=internal,
        at=at,
    )
    return event_from(payload, service="ticket", subject=payload.ticket_id, sequence=3)


async def test_last_contact_date_moves_forward_only(client, auth_headers):
    h = auth_headers()
    c = await create(client, h)
    base = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
    await deliver(client, contact(c["id"], base))
    assert (await get(client, h, c["id"]))["lastContactDate"].startswith("2030-06-01T12:00:00")
    await deliver(
        client, contact(c["id"], base - timedelta(days=3)), message(c["id"], base - timedelta(hours=1))
    )
    assert (await get(client, h, c["id"]))["lastContactDate"].startswith("2030-06-01T12:00:00")
    await deliver(client, message(c["id"], base + timedelta(hours=2)))
    assert (await get(client, h, c["id"]))["lastContactDate"].startswith("2030-06-01T14:00:00")
    await deliver(client, message(c["id"], base + timedelta(days=9), internal=True))  # not a contact
    assert (await get(client, h, c["id"]))["lastContactDate"].startswith("2030-06-01T14:00:00")
    # An activity about no customer, and a naive timestamp (taken as UTC), are handled too.
    await deliver(client, contact(None, base))
    naive = contact(c["id"], base)
    naive.data["completedAt"] = "2030-06-02T00:00:00"
    await deliver(client, naive)
    now = await get(client, h, c["id"])
    assert now["lastContactDate"].startswith("2030-06-02T00:00:00") and now["version"] == 1
