"""What pipeline-svc does with customer-svc's events, in any order and however often they come."""

import uuid
from decimal import Decimal

from crm_common.contracts.customer import (
    CustomerConverted,
    CustomerMerged,
    CustomerUpdated,
    OpportunityDraft,
)
from crm_common.events import dead_letters
from crm_common.events.envelope import event_from
from crm_common.testing.plugin import count_rows, customer_created_event, outbox_payloads, publish
from pipeline_svc.models import Invoice, Opportunity


def updated_event(customer_id, *, full_name, version, status="CUSTOMER"):
    payload = CustomerUpdated(
        customer_id=customer_id,
        customer_number="CUST-2026-000001",
        full_name=full_name,
        status=status,
        changes={"fullName": full_name},
    )
    return event_from(payload, service="customer", subject=customer_id, sequence=version)


def converted_event(customer_id, draft: OpportunityDraft | None, *, version=2, by=None):
    payload = CustomerConverted(
        customer_id=customer_id,
        customer_number="CUST-2026-000002",
        full_name="Lead Co",
        previous_status="LEAD",
        status="CUSTOMER",
        converted_by=by,
        opportunity=draft,
    )
    return event_from(payload, service="customer", subject=customer_id, sequence=version)


def merged_event(primary, secondary, *, by=None):
    payload = CustomerMerged(
        primary_customer_id=primary,
        secondary_customer_id=secondary,
        primary_customer_number="CUST-2026-000010",
        secondary_customer_number="CUST-2026-000011",
        primary_full_name="Primary Inc",
        secondary_full_name="Secondary Inc",
        merged_by=by,
    )
    return event_from(payload, service="customer", subject=primary, sequence=5)


async def test_names_follow_the_newest_customer_event_in_any_order(
    client, auth_headers, bus, new_opportunity
):
    customer = uuid.uuid4()
    # updated (version 3) overtakes created (version 1) and an older update (version 2)
    await publish(bus, updated_event(customer, full_name="Newest Name", version=3))
    await publish(bus, customer_created_event(customer, name="Original Name", sequence=1))
    await publish(bus, updated_event(customer, full_name="Older Name", version=2))
    o = await new_opportunity(customerId=str(customer))
    assert o["customerName"] == "Newest Name"
    await publish(bus, updated_event(customer, full_name="Renamed", version=4))
    got = await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers())
    assert got.json()["customerName"] == "Renamed"


async def test_a_conversion_with_a_draft_creates_that_opportunity_once(client, auth_headers, bus, stages):
    customer, converter, opportunity_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    draft = OpportunityDraft(opportunity_id=opportunity_id, title="First order", currency="EUR")
    event = converted_event(customer, draft, by=converter)
    await publish(bus, event)
    # The same conversion again (redelivered), and as a new event carrying the same draft.
    await publish(bus, event)
    await publish(bus, converted_event(customer, draft, by=converter, version=3))
    assert await count_rows(client, Opportunity) == 1

    r = await client.get(f"/api/v1/opportunities/{opportunity_id}", headers=auth_headers())
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["customerId"] == str(customer) and o["customerName"] == "Lead Co"
    assert o["stageName"] == "Prospecting" and o["probability"] == 10
    # No amount in the draft: 0, following the line items.
    assert o["amount"] == "0.00" and o["amountManual"] is False and o["currency"] == "EUR"
    assert o["ownerId"] == str(converter) and o["createdById"] == str(converter)
    (created,) = await outbox_payloads(client, "opportunity.created")
    assert created["subject"] == str(opportunity_id) and created["data"]["createdBy"] == str(converter)


async def test_a_draft_keeps_its_stage_amount_probability_and_owner(client, auth_headers, bus, stages):
    s = await stages()
    owner, opportunity_id = uuid.uuid4(), uuid.uuid4()
    draft = OpportunityDraft(
        opportunity_id=opportunity_id,
        title="Upsell",
        amount=Decimal("4200.5"),
        currency="USD",
        stage_id=uuid.UUID(s["Proposal"]["id"]),
        probability=40,
        owner_id=owner,
        expected_close_date="2026-10-01",
    )
    await publish(bus, converted_event(uuid.uuid4(), draft))
    o = (await client.get(f"/api/v1/opportunities/{opportunity_id}", headers=auth_headers())).json()
    assert (o["stageName"], o["probability"], o["amount"], o["amountManual"]) == (
        "Proposal",
        40,
        "4200.50",
        True,
    )
    assert o["ownerId"] == str(owner) and o["expectedCloseDate"] == "2026-10-01"

    # A draft naming a stage that cannot take it (unknown here) starts in the first active stage.
    other = uuid.uuid4()
    draft = OpportunityDraft(opportunity_id=other, title="X", stage_id=uuid.uuid4())
    await publish(bus, converted_event(uuid.uuid4(), draft))
    o = (await client.get(f"/api/v1/opportunities/{other}", headers=auth_headers())).json()
    assert o["stageName"] == "Prospecting"


async def test_a_conversion_without_a_draft_only_updates_the_customer(client, bus, new_opportunity):
    customer = uuid.uuid4()
    await publish(bus, converted_event(customer, None))
    assert await count_rows(client, Opportunity) == 0
    o = await new_opportunity(customerId=str(customer))
    assert o["customerName"] == "Lead Co"


async def test_a_merge_moves_opportunities_and_invoices_to_the_primary(
    client, auth_headers, bus, new_customer, new_opportunity
):
    primary, secondary = await new_customer("Primary Inc"), await new_customer("Secondary Inc")
    h = auth_headers()
    a = await new_opportunity(customerId=str(secondary), amount="10")
    b = await new_opportunity(customerId=str(secondary), amount="20")
    keep = await new_opportunity(customerId=str(primary), amount="30")
    await client.post(f"/api/v1/opportunities/{b['id']}/win", headers=h)  # b is v2 and has an invoice
    merger = uuid.uuid4()
    event = merged_event(primary, secondary, by=merger)
    await publish(bus, event)
    await publish(bus, event)  # redelivered: nothing more happens

    for o, version in ((a, 2), (b, 3)):
        got = (await client.get(f"/api/v1/opportunities/{o['id']}", headers=h)).json()
        assert got["customerId"] == str(primary) and got["customerName"] == "Primary Inc"
        assert got["version"] == version
    assert (await client.get(f"/api/v1/opportunities/{keep['id']}", headers=h)).json()["version"] == 1
    invoices = (await client.get("/api/v1/invoices", params={"customerId": str(primary)}, headers=h)).json()
    assert invoices["total"] == 1 and invoices["items"][0]["opportunityId"] == b["id"]
    assert (await client.get("/api/v1/invoices", params={"customerId": str(secondary)}, headers=h)).json()[
        "total"
    ] == 0

    moved = [
        e
        for e in await outbox_payloads(client, "opportunity.updated")
        if "customerId" in e["data"]["changes"]
    ]
    assert sorted((e["subject"], e["sequence"]) for e in moved) == sorted([(a["id"], 2), (b["id"], 3)])
    assert all(
        e["data"]["customerId"] == str(primary) and e["data"]["updatedBy"] == str(merger) for e in moved
    )
    invoice_moves = await outbox_payloads(client, "invoice.repointed")
    assert [(e["subject"], e["data"]["fromCustomerId"], e["data"]["customerId"]) for e in invoice_moves] == [
        (invoices["items"][0]["id"], str(secondary), str(primary))
    ]
    assert invoice_moves[0]["sequence"] == invoices["items"][0]["version"]
    won = next(e for e in moved if e["subject"] == b["id"])
    assert won["data"]["status"] == "WON" and won["data"]["amount"] == "20.00"

    # A new opportunity naming the merged customer goes to the survivor (the rule in every service).
    r = await client.post(
        "/api/v1/opportunities", json={"title": "X", "customerId": str(secondary)}, headers=h
    )
    assert r.status_code == 201 and r.json()["customerId"] == str(primary)
    assert await count_rows(client, Opportunity) == 4


async def test_a_conversion_arriving_after_the_merge_lands_on_the_primary(client, auth_headers, bus):
    primary, secondary, opportunity_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await publish(bus, merged_event(primary, secondary))
    draft = OpportunityDraft(opportunity_id=opportunity_id, title="Late draft")
    await publish(bus, converted_event(secondary, draft))
    o = (await client.get(f"/api/v1/opportunities/{opportunity_id}", headers=auth_headers())).json()
    assert o["customerId"] == str(primary) and o["customerName"] == "Primary Inc"


async def test_a_draft_with_bad_data_is_dead_lettered_not_half_applied(client, bus):
    draft = OpportunityDraft(opportunity_id=uuid.uuid4(), title="X", currency="ZZZ")
    bus.retry_delay = 0.001
    # Recorded durably in pipeline-svc's own database, so the publish counts as delivered.
    await publish(bus, converted_event(uuid.uuid4(), draft))
    letters = await dead_letters.stored(client.app.state.runtime.db)
    assert [(d.consumer, d.event_type) for d in letters] == [("pipeline", "crm.customer.converted")]
    assert await count_rows(client, Opportunity) == 0
    assert await count_rows(client, Invoice) == 0


async def test_a_customer_event_with_an_undocumented_status_is_dead_lettered_not_stored(
    client, auth_headers, bus
):
    customer_id = uuid.uuid4()
    event = customer_created_event(customer_id, name="Zombie Inc")
    event.data["status"] = "ZOMBIE"
    bus.retry_delay = 0.001
    await bus.publish([event], timeout=10)
    letters = await dead_letters.stored(client.app.state.runtime.db)
    assert [(d.consumer, d.event_type) for d in letters] == [("pipeline", "crm.customer.created")]
    r = await client.post(
        "/api/v1/opportunities", json={"title": "X", "customerId": str(customer_id)}, headers=auth_headers()
    )
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_CUSTOMER"
