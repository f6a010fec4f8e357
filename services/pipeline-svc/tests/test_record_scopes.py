"""Record scopes on opportunities (issue 13): two teams of two reps, a manager, support, marketing and
read_only; get, list (and totals), update, win/lose, line items, board and forecast each follow them."""

import uuid
from datetime import UTC, datetime

import pytest
from crm_common.contracts.customer import CustomerAssigned, CustomerOwner
from crm_common.events.envelope import event_from
from crm_common.testing.plugin import customer_created_event, publish, team_event, user_event
from pipeline_svc.service.forecast import period_range

ROLES = {
    "a1": "sales_rep",
    "a2": "sales_rep",
    "b1": "sales_rep",
    "b2": "sales_rep",
    "manager": "sales_manager",
    "support": "support_agent",
    "marketer": "marketer",
    "reader": "read_only",
    "admin": "admin",
    "outsider": "sales_rep",
}
VISIBLE = {
    "a1": {"a1", "a2"},
    "b2": {"b1", "b2", "team_b"},
    "manager": {"a1", "a2"},  # manages team A
    "support": {"b1", "b2", "team_b"},  # reads sales with team scope; a member of team B
    "marketer": set(),  # in no team
    "reader": {"a1", "a2", "b1", "b2", "team_b"},
    "admin": {"a1", "a2", "b1", "b2", "team_b"},
}


def headers(make_token, person, ids, **claims):
    return {"Authorization": f"Bearer {make_token([ROLES[person]], user_id=ids[person], **claims)}"}


@pytest.fixture
async def world(client, make_token, new_customer):
    ids = {}
    for person, role in ROLES.items():
        ids[person] = uuid.uuid4()
        await publish(client.bus, user_event(ids[person], name=person, roles=[role]))
    teams = {}
    for name, members, manager in (("A", ["a1", "a2"], "manager"), ("B", ["b1", "b2", "support"], None)):
        event = team_event(
            name=name, manager_id=ids[manager] if manager else None, member_ids=[ids[m] for m in members]
        )
        await publish(client.bus, event)
        teams[name] = ids[f"team_{name}"] = uuid.UUID(event.data["teamId"])
    customer = str(await new_customer())
    close = period_range("quarter", datetime.now(UTC).date())[0].isoformat()
    admin = headers(make_token, "admin", ids)
    opportunities = {}
    for name, owner, team in (
        ("a1", "a1", None),
        ("a2", "a2", None),
        ("b1", "b1", None),
        ("b2", "b2", None),
        ("team_b", "outsider", teams["B"]),
    ):
        body = {
            "title": f"Deal of {name}",
            "customerId": customer,
            "ownerId": str(ids[owner]),
            "amount": "100.00",
            "currency": "USD",
            "expectedCloseDate": close,
        }
        if team:
            body["teamId"] = str(team)
        r = await client.post("/api/v1/opportunities", json=body, headers=admin)
        assert r.status_code == 201, r.text
        opportunities[name] = r.json()
    return ids, opportunities


async def test_each_caller_sees_and_counts_only_their_scope(client, make_token, world):
    ids, opportunities = world
    by_id = {o["id"]: name for name, o in opportunities.items()}
    for person, expected in VISIBLE.items():
        h = headers(make_token, person, ids)
        page = (await client.get("/api/v1/opportunities", params={"pageSize": 200}, headers=h)).json()
        assert {by_id[i["id"]] for i in page["items"]} == expected, person
        assert page["total"] == len(expected), person
        for name, o in opportunities.items():
            r = await client.get(f"/api/v1/opportunities/{o['id']}", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)

        board = (await client.get("/api/v1/opportunities/board", headers=h)).json()
        cards = {by_id[c["id"]] for col in board["columns"] for c in col["cards"]}
        assert cards == expected, person
        assert sum(col["summary"]["count"] for col in board["columns"]) == len(expected), person

        forecast = (await client.get("/api/v1/opportunities/forecast", headers=h)).json()
        assert forecast["totalOpportunities"] == len(expected), person
        totals = [(c["currency"], c["totalValue"]) for c in forecast["currencies"]]
        assert totals == ([("USD", f"{100 * len(expected)}.00")] if expected else []), person


async def test_writes_follow_the_read_and_write_scopes(client, make_token, world):
    ids, opportunities = world
    a1 = headers(make_token, "a1", ids)
    theirs, mate = opportunities["b1"], opportunities["a2"]
    for method, path, body in (
        ("PATCH", "", {"title": "Mine now", "version": 1}),
        ("POST", "/win", {}),
        ("POST", "/lose", {"lostReason": "price"}),
    ):
        r = await client.request(method, f"/api/v1/opportunities/{theirs['id']}{path}", json=body, headers=a1)
        assert r.status_code == 404, path
    admin = headers(make_token, "admin", ids)
    after = (await client.get(f"/api/v1/opportunities/{theirs['id']}", headers=admin)).json()
    assert after["version"] == theirs["version"] and after["status"] == "OPEN"

    # Reading the team but writing only their own: a teammate's deal is a 403.
    own_writer = headers(make_token, "a1", ids, scp={"sales": ["team", "own"]})
    r = await client.patch(
        f"/api/v1/opportunities/{mate['id']}", json={"title": "x", "version": 1}, headers=own_writer
    )
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE"
    r = await client.post(f"/api/v1/opportunities/{mate['id']}/win", json={}, headers=own_writer)
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/opportunities/{opportunities['a1']['id']}/win", json={}, headers=own_writer
    )
    assert r.status_code == 200, r.text
    # With the default team write scope the teammate's deal is theirs to change.
    r = await client.post(
        f"/api/v1/opportunities/{mate['id']}/lose", json={"lostReason": "price"}, headers=a1
    )
    assert r.status_code == 200, r.text
    # Creating one for somebody outside the write scope is refused.
    r = await client.post(
        "/api/v1/opportunities",
        json={"title": "t", "customerId": theirs["customerId"], "ownerId": str(ids["b1"])},
        headers=a1,
    )
    assert r.status_code == 403
    reader = headers(make_token, "reader", ids)
    r = await client.patch(
        f"/api/v1/opportunities/{theirs['id']}", json={"title": "x", "version": 1}, headers=reader
    )
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"


async def test_invoices_follow_their_opportunity(client, make_token, world):
    """An invoice is read (and issued, paid, voided) by whoever may read (change) its opportunity; one
    made for a customer alone whose owner pipeline-svc does not know (heard of through an event older
    than the owner field) follows its creator."""
    ids, opportunities = world
    admin = headers(make_token, "admin", ids)
    names = {}
    for name, o in opportunities.items():
        r = await client.post(f"/api/v1/opportunities/{o['id']}/win", json={}, headers=admin)
        assert r.status_code == 200, r.text
        names[r.json()["invoice"]["id"]] = name
    customer = opportunities["a1"]["customerId"]
    lone = {"customerId": customer, "lines": [{"description": "Consulting", "unitPrice": "50.00"}]}
    for creator in ("a1", "admin"):
        r = await client.post("/api/v1/invoices", json=lone, headers=headers(make_token, creator, ids))
        assert r.status_code == 201, r.text
        names[r.json()["id"]] = f"made_by_{creator}"
    made_by = {  # who reads the invoices made without an opportunity
        "a1": {"made_by_a1"},
        "manager": {"made_by_a1"},
        "reader": {"made_by_a1", "made_by_admin"},
        "admin": {"made_by_a1", "made_by_admin"},
    }
    for person, expected in VISIBLE.items():
        expected = expected | made_by.get(person, set())
        h = headers(make_token, person, ids)
        page = (await client.get("/api/v1/invoices", params={"pageSize": 200}, headers=h)).json()
        assert {names[i["id"]] for i in page["items"]} == expected, person
        assert page["total"] == len(expected), person
        for invoice_id, name in names.items():
            r = await client.get(f"/api/v1/invoices/{invoice_id}", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)
            if r.status_code == 404:
                assert r.json()["code"] == "INVOICE_NOT_FOUND"
    invoice_of = {name: invoice_id for invoice_id, name in names.items()}

    a1 = headers(make_token, "a1", ids)
    by_opportunity = await client.get(
        "/api/v1/invoices", params={"opportunityId": opportunities["b1"]["id"]}, headers=a1
    )
    assert by_opportunity.json()["total"] == 0 and by_opportunity.json()["items"] == []
    # Another team's invoice cannot be issued, paid or voided: a 404, and it stays a DRAFT.
    for action in ("issue", "pay", "void"):
        r = await client.post(f"/api/v1/invoices/{invoice_of['b1']}/{action}", json={}, headers=a1)
        assert r.status_code == 404 and r.json()["code"] == "INVOICE_NOT_FOUND", action
    theirs = (await client.get(f"/api/v1/invoices/{invoice_of['b1']}", headers=admin)).json()
    assert theirs["status"] == "DRAFT" and theirs["version"] == 1
    # Reading the team but changing only their own: a teammate's invoice is a 403, their own is fine.
    own_writer = headers(make_token, "a1", ids, scp={"sales": ["team", "own"]})
    r = await client.post(f"/api/v1/invoices/{invoice_of['a2']}/issue", json={}, headers=own_writer)
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE"
    assert (await client.get(f"/api/v1/invoices/{invoice_of['a2']}", headers=admin)).json()[
        "status"
    ] == "DRAFT"
    r = await client.post(f"/api/v1/invoices/{invoice_of['a1']}/issue", json={}, headers=own_writer)
    assert r.status_code == 200 and r.json()["status"] == "ISSUED", r.text
    r = await client.post(f"/api/v1/invoices/{invoice_of['a2']}/void", json={}, headers=a1)
    assert r.status_code == 200 and r.json()["status"] == "VOID", r.text
    reader = headers(make_token, "reader", ids)
    r = await client.post(f"/api/v1/invoices/{invoice_of['a1']}/pay", json={}, headers=reader)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"

    # Invoicing another team's deal: the deal is unknown to the caller; a teammate's, with an own
    # write scope, is refused. Neither writes an invoice.
    before = (await client.get("/api/v1/invoices", headers=admin)).json()["total"]
    r = await client.post(
        "/api/v1/invoices", json={**lone, "opportunityId": opportunities["b1"]["id"]}, headers=a1
    )
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_OPPORTUNITY", r.text
    r = await client.post(
        "/api/v1/invoices", json={**lone, "opportunityId": opportunities["a2"]["id"]}, headers=own_writer
    )
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", r.text
    assert (await client.get("/api/v1/invoices", headers=admin)).json()["total"] == before


async def test_an_invoice_without_opportunity_follows_its_customers_owner(client, make_token, world):
    ids, _ = world
    admin = headers(make_token, "admin", ids)

    async def customer(assigned_to=None, team=None, version=1, customer_id=None):
        event = customer_created_event(
            customer_id, sequence=version, owner=CustomerOwner(assigned_to_id=assigned_to, team_id=team)
        )
        await publish(client.bus, event)
        return event.data["customerId"]

    customers = {
        "of_b1": await customer(assigned_to=ids["b1"]),
        "of_team_b": await customer(team=ids["team_B"]),
        "of_a2": await customer(assigned_to=ids["a2"]),
    }
    invoices = {}
    for name, cid in customers.items():
        body = {"customerId": cid, "lines": [{"description": "Consulting", "unitPrice": "50.00"}]}
        r = await client.post("/api/v1/invoices", json=body, headers=admin)
        assert r.status_code == 201, r.text
        invoices[name] = r.json()["id"]
    visible = {"a1": {"of_a2"}, "b2": {"of_b1", "of_team_b"}, "reader": set(invoices)}
    for person, expected in visible.items():
        h = headers(make_token, person, ids)
        page = (await client.get("/api/v1/invoices", params={"pageSize": 200}, headers=h)).json()
        mine = {name for name, i in invoices.items() if i in {item["id"] for item in page["items"]}}
        assert mine == expected, person
        for name, invoice_id in invoices.items():
            r = await client.get(f"/api/v1/invoices/{invoice_id}", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)
            if r.status_code == 404:
                assert r.json()["code"] == "INVOICE_NOT_FOUND"
    a1 = headers(make_token, "a1", ids)
    r = await client.post(f"/api/v1/invoices/{invoices['of_b1']}/issue", json={}, headers=a1)
    assert r.status_code == 404
    r = await client.post(f"/api/v1/invoices/{invoices['of_a2']}/issue", json={}, headers=a1)
    assert r.status_code == 200, r.text
    # Invoicing another team's customer: unknown to the caller, as a missing one; nothing written.
    before = (await client.get("/api/v1/invoices", headers=admin)).json()["total"]
    body = {"customerId": customers["of_team_b"], "lines": [{"description": "x", "unitPrice": "1.00"}]}
    r = await client.post("/api/v1/invoices", json=body, headers=a1)
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_CUSTOMER", r.text
    assert (await client.get("/api/v1/invoices", headers=admin)).json()["total"] == before

    # The customer is reassigned to team A (customer.assigned): its invoice moves with it.
    assigned = CustomerAssigned(
        customer_id=uuid.UUID(customers["of_b1"]),
        customer_number="CUST-2026-000001",
        full_name="Acme Ltd",
        assigned_to_id=ids["a2"],
        previous_assigned_to_id=ids["b1"],
    )
    await publish(
        client.bus, event_from(assigned, service="customer", subject=assigned.customer_id, sequence=2)
    )
    assert (await client.get(f"/api/v1/invoices/{invoices['of_b1']}", headers=a1)).status_code == 200
    b2 = headers(make_token, "b2", ids)
    assert (await client.get(f"/api/v1/invoices/{invoices['of_b1']}", headers=b2)).status_code == 404
    # A late, older event does not move it back.
    await customer(assigned_to=ids["b1"], version=1, customer_id=uuid.UUID(customers["of_b1"]))
    assert (await client.get(f"/api/v1/invoices/{invoices['of_b1']}", headers=a1)).status_code == 200
