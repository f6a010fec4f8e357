"""Record scopes on campaigns (issue 13): marketing reads and writes all campaigns, sales its teams';
get, list (and totals), targets, metrics, updates and transitions follow them. Customers added as
targets by id follow the caller's *customer* read scope."""

import uuid

from crm_common.contracts.customer import CustomerAssigned
from crm_common.events.envelope import event_from
from crm_common.testing.plugin import team_event, user_event

from .conftest import create_campaign, customer_created, deliver

ROLES = {
    "a1": "sales_rep",
    "a2": "sales_rep",
    "b1": "sales_rep",
    "b2": "sales_rep",
    "manager": "sales_manager",
    "marketer": "marketer",
    "reader": "read_only",
    "admin": "admin",
}
EVERY = {"a1", "b1", "marketer"}  # campaigns by owner
VISIBLE = {
    "a2": {"a1"},
    "b2": {"b1"},
    "manager": {"a1"},  # manages team A
    "marketer": EVERY,  # `all` on campaigns
    "reader": EVERY,
    "admin": EVERY,
}


def bearer(make_token, role, user_id, **claims):
    return {"Authorization": f"Bearer {make_token([role], user_id=user_id, **claims)}"}


async def setup(client, make_token):
    ids = {}
    for person, role in ROLES.items():
        ids[person] = uuid.uuid4()
        await deliver(client, user_event(ids[person], name=person, roles=[role]))
    for name, members, manager in (("A", ["a1", "a2"], "manager"), ("B", ["b1", "b2"], None)):
        ids[f"team_{name}"] = uuid.uuid4()
        team = team_event(
            ids[f"team_{name}"],
            name=name,
            manager_id=ids[manager] if manager else None,
            member_ids=[ids[m] for m in members],
        )
        await deliver(client, team)
    headers = {p: bearer(make_token, role, ids[p]) for p, role in ROLES.items()}
    campaigns = {
        owner: await create_campaign(client, headers["admin"], name=f"Of {owner}", ownerId=str(ids[owner]))
        for owner in EVERY
    }
    return ids, headers, campaigns


async def test_each_caller_sees_and_counts_only_their_scope(client, make_token):
    _, headers, campaigns = await setup(client, make_token)
    by_id = {c["id"]: name for name, c in campaigns.items()}
    for person, expected in VISIBLE.items():
        h = headers[person]
        page = (await client.get("/api/v1/campaigns", params={"pageSize": 200}, headers=h)).json()
        assert {by_id[i["id"]] for i in page["items"]} == expected and page["total"] == len(expected), person
        for name, c in campaigns.items():
            status = 200 if name in expected else 404
            for path in ("", "/targets", "/metrics"):
                r = await client.get(f"/api/v1/campaigns/{c['id']}{path}", headers=h)
                assert r.status_code == status, (person, name, path)


async def test_writes_follow_the_read_and_write_scopes(client, make_token):
    ids, headers, campaigns = await setup(client, make_token)
    manager, outside, mine = headers["manager"], campaigns["b1"], campaigns["a1"]
    customer = uuid.uuid4()
    await deliver(client, customer_created(customer))
    attempts = (
        ("PATCH", "", {"name": "x", "version": 1}),
        ("POST", "/activate", None),
        ("POST", "/targets", {"customerIds": [str(customer)]}),
        ("DELETE", "", None),
    )
    for method, path, body in attempts:
        r = await client.request(
            method, f"/api/v1/campaigns/{outside['id']}{path}", json=body, headers=manager
        )
        assert r.status_code == 404, path
    after = (await client.get(f"/api/v1/campaigns/{outside['id']}", headers=headers["admin"])).json()
    assert after["version"] == outside["version"] and after["targetCount"] == 0

    narrow = bearer(make_token, "sales_manager", ids["manager"], scp={"campaigns": ["team", "own"]})
    for method, path, body in attempts:
        r = await client.request(method, f"/api/v1/campaigns/{mine['id']}{path}", json=body, headers=narrow)
        assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", path
    r = await client.patch(
        f"/api/v1/campaigns/{mine['id']}", json={"name": "Renamed", "version": 1}, headers=manager
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/v1/campaigns", json={"name": "n", "type": "EMAIL", "ownerId": str(ids["b1"])}, headers=manager
    )
    assert r.status_code == 403
    r = await client.patch(
        f"/api/v1/campaigns/{mine['id']}", json={"name": "x", "version": 2}, headers=headers["a2"]
    )
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"


async def test_a_target_outside_the_callers_customer_scope_is_an_unknown_customer(client, make_token):
    ids, headers, campaigns = await setup(client, make_token)
    mine = campaigns["a1"]["id"]

    def marketing_rep(person):  # a rep who also runs campaigns: customers `team`, campaigns `all`
        token = make_token(["sales_rep", "marketer"], user_id=ids[person])
        return {"Authorization": f"Bearer {token}"}

    customers = {
        "mate": customer_created(assigned_to=ids["a2"]),  # team A: readable by a1
        "of_team_a": customer_created(assigned_to=None, team=ids["team_A"]),
        "of_b1": customer_created(assigned_to=ids["b1"]),
        "of_team_b": customer_created(assigned_to=None, team=ids["team_B"]),
        # Heard of through an event older than the owner field, and no customer-svc to ask here.
        "owner_unknown": customer_created(assigned_to=None),
    }
    unknown_owner = customers["owner_unknown"]
    unknown_owner.data.pop("owner")
    await deliver(client, *customers.values())
    cid = {name: e.data["customerId"] for name, e in customers.items()}
    nonexistent = str(uuid.uuid4())

    r = await client.post(
        f"/api/v1/campaigns/{mine}/targets",
        json={"customerIds": [*cid.values(), nonexistent]},
        headers=marketing_rep("a1"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["added"]) == {cid["mate"], cid["of_team_a"]} and body["targetCount"] == 2
    refused = {item["customerId"]: (item["code"], item["message"]) for item in body["refused"]}
    hidden = [cid["of_b1"], cid["of_team_b"], cid["owner_unknown"]]
    # Out of scope reads exactly as a customer that does not exist.
    assert refused == {c: refused[nonexistent] for c in [*hidden, nonexistent]}
    assert refused[nonexistent] == ("UNKNOWN_CUSTOMER", "no such customer")

    # The same customers are fine for callers whose customer scope covers them.
    r = await client.post(
        f"/api/v1/campaigns/{campaigns['b1']['id']}/targets",
        json={"customerIds": [cid["of_b1"], cid["of_team_b"]]},
        headers=marketing_rep("b2"),
    )
    assert r.status_code == 200 and len(r.json()["added"]) == 2, r.text
    r = await client.post(
        f"/api/v1/campaigns/{mine}/targets", json={"customerIds": hidden}, headers=headers["admin"]
    )
    assert r.status_code == 200 and set(r.json()["added"]) == set(hidden), r.text

    # A reassignment (customer.assigned) moves the customer into a1's scope.
    assigned = CustomerAssigned(
        customer_id=uuid.UUID(cid["of_b1"]),
        customer_number="CUST-2026-000001",
        full_name="Jo Doe",
        assigned_to_id=ids["a2"],
        previous_assigned_to_id=ids["b1"],
    )
    await deliver(client, event_from(assigned, service="customer", subject=assigned.customer_id, sequence=2))
    other = await create_campaign(client, headers["admin"], name="Another of a1", ownerId=str(ids["a1"]))
    r = await client.post(
        f"/api/v1/campaigns/{other['id']}/targets",
        json={"customerIds": [cid["of_b1"], cid["of_team_b"]]},
        headers=marketing_rep("a1"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["added"] == [cid["of_b1"]] and [i["customerId"] for i in r.json()["refused"]] == [
        cid["of_team_b"]
    ]
