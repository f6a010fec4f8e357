"""The customers ticket-svc knows, from customer-svc's events: any order, redelivered, merged."""

import uuid

from crm_common.contracts.customer import CustomerMerged, CustomerUpdated
from crm_common.events.envelope import new_event
from crm_common.testing.plugin import customer_created_event, publish


def updated_event(customer_id, *, name, sequence, changes=None):
    payload = CustomerUpdated(
        customer_id=customer_id,
        customer_number="CUST-2026-000001",
        full_name=name,
        status="CUSTOMER",
        changes=changes or {"fullName": name},
    )
    return new_event(
        "customer.updated", service="customer", subject=customer_id, data=payload.dump(), sequence=sequence
    )


def merged_event(primary, secondary):
    payload = CustomerMerged(
        primary_customer_id=primary,
        secondary_customer_id=secondary,
        primary_customer_number="CUST-2026-000001",
        secondary_customer_number="CUST-2026-000002",
        primary_full_name="Primary",
        secondary_full_name="Secondary",
    )
    return new_event("customer.merged", service="customer", subject=primary, data=payload.dump())


async def test_the_newest_customer_data_wins_in_any_order(client, bus, new_ticket):
    customer = uuid.uuid4()
    await publish(bus, updated_event(customer, name="Acme Renamed", sequence=3))
    await publish(bus, customer_created_event(customer, name="Acme", sequence=1))
    await publish(bus, updated_event(customer, name="Acme Two", sequence=2))
    ticket = await new_ticket(customerId=str(customer))
    assert ticket["customerName"] == "Acme Renamed"


async def test_a_redelivered_event_changes_nothing(client, bus, new_ticket):
    customer = uuid.uuid4()
    created = customer_created_event(customer, name="Acme", sequence=1)
    await publish(bus, created)
    renamed = updated_event(customer, name="Acme Renamed", sequence=2)
    await publish(bus, renamed)
    await publish(bus, created, created)
    assert (await new_ticket(customerId=str(customer)))["customerName"] == "Acme Renamed"


async def test_merge_repoints_the_secondarys_tickets(client, api, bus, agent, new_ticket, add_customer):
    primary, secondary = await add_customer("Primary"), await add_customer("Secondary")
    kept = await new_ticket(customerId=str(primary))
    moved = [await new_ticket(customerId=str(secondary)) for _ in range(2)]
    event = merged_event(primary, secondary)
    await publish(bus, event)
    await publish(bus, event)  # redelivered
    for t in moved:
        got = await api.get(t)
        assert got["customerId"] == str(primary) and got["customerName"] == "Primary"
        assert got["version"] == 2  # once, though delivered twice
    assert (await api.get(kept))["version"] == 1
    # The move is published once per ticket (ticket.repointed), for mirrors built from events.
    repointed = await api.events("ticket.repointed")
    assert sorted(
        (e["subject"], e["sequence"], e["data"]["fromCustomerId"], e["data"]["customerId"]) for e in repointed
    ) == sorted((t["id"], 2, str(secondary), str(primary)) for t in moved)
    page = (await client.get("/api/v1/tickets", params={"customerId": str(primary)}, headers=agent)).json()
    assert page["total"] == 3
    # A ticket opened later for the merged customer goes to the one it was merged into.
    assert (await new_ticket(customerId=str(secondary)))["customerId"] == str(primary)


async def test_merge_chains_resolve_in_any_order(client, api, bus, new_ticket, add_customer):
    a, b, c = await add_customer("A"), await add_customer("B"), await add_customer("C")
    ticket_a, ticket_b = await new_ticket(customerId=str(a)), await new_ticket(customerId=str(b))
    await publish(bus, merged_event(c, b))  # B into C arrives first
    await publish(bus, merged_event(b, a))  # then A into B
    assert (await api.get(ticket_a))["customerId"] == str(c)
    assert (await api.get(ticket_b))["customerId"] == str(c)
    assert (await new_ticket(customerId=str(a)))["customerId"] == str(c)


async def test_a_merge_heard_before_the_customers_themselves(client, bus, new_ticket):
    primary, secondary = uuid.uuid4(), uuid.uuid4()
    await publish(bus, merged_event(primary, secondary))
    await publish(bus, customer_created_event(secondary, name="Secondary", sequence=1))
    ticket = await new_ticket(customerId=str(secondary))
    assert ticket["customerId"] == str(primary) and ticket["customerName"] == "Primary"


async def test_customer_priority_comes_from_updates(client, bus, new_ticket, new_policy, add_customer):
    vip = await new_policy(name="VIP", customerPriority="HIGH")
    customer = await add_customer()
    assert (await new_ticket(customerId=str(customer)))["slaPolicyId"] is None
    await publish(bus, updated_event(customer, name="Acme", sequence=2, changes={"priority": "HIGH"}))
    assert (await new_ticket(customerId=str(customer)))["slaPolicyId"] == vip["id"]
    # An update without a priority keeps the one known.
    await publish(bus, updated_event(customer, name="Acme", sequence=3, changes={"phone": "1"}))
    assert (await new_ticket(customerId=str(customer)))["slaPolicyId"] == vip["id"]
