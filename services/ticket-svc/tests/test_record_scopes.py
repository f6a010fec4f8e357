"""Record scopes on tickets (issue 13): support reads and writes all tickets, sales reads its teams',
read_only reads all; get, list (and totals), metrics, communications and the actions follow them."""

import uuid

from crm_common.testing.plugin import publish, team_event, user_event

ROLES = {
    "a1": "sales_rep",
    "a2": "sales_rep",
    "b1": "sales_rep",
    "b2": "sales_rep",
    "manager": "sales_manager",
    "support": "support_agent",
    "reader": "read_only",
    "admin": "admin",
}
EVERY = {"a1", "a2", "b1", "b2", "support"}  # tickets by assignee
VISIBLE = {
    "a1": {"a1", "a2"},
    "b2": {"b1", "b2", "support"},  # the support agent is in team B
    "manager": {"a1", "a2"},  # manages team A
    "support": EVERY,  # `all` on tickets
    "reader": EVERY,
    "admin": EVERY,
}


def bearer(make_token, role, user_id, **claims):
    return {"Authorization": f"Bearer {make_token([role], user_id=user_id, **claims)}"}


async def setup(client, bus, make_token, add_customer):
    ids = {}
    for person, role in ROLES.items():
        ids[person] = uuid.uuid4()
        await publish(bus, user_event(ids[person], name=person, roles=[role]))
    for name, members, manager in (("A", ["a1", "a2"], "manager"), ("B", ["b1", "b2", "support"], None)):
        manager_id = ids[manager] if manager else None
        await publish(bus, team_event(name=name, manager_id=manager_id, member_ids=[ids[m] for m in members]))
    headers = {p: bearer(make_token, role, ids[p]) for p, role in ROLES.items()}
    customer = str(await add_customer())
    tickets = {}
    for owner in ("a1", "a2", "b1", "b2", "support"):
        body = {
            "subject": f"Ticket of {owner}",
            "description": "d",
            "type": "PROBLEM",
            "customerId": customer,
            "assignedToId": str(ids[owner]),
        }
        r = await client.post("/api/v1/tickets", json=body, headers=headers["admin"])
        assert r.status_code == 201, r.text
        tickets[owner] = r.json()
    return ids, headers, tickets


async def test_each_caller_sees_and_counts_only_their_scope(client, bus, make_token, add_customer):
    _, headers, tickets = await setup(client, bus, make_token, add_customer)
    by_id = {t["id"]: name for name, t in tickets.items()}
    for person, expected in VISIBLE.items():
        h = headers[person]
        page = (await client.get("/api/v1/tickets", params={"pageSize": 200}, headers=h)).json()
        assert {by_id[i["id"]] for i in page["items"]} == expected and page["total"] == len(expected), person
        report = (await client.get("/api/v1/tickets/metrics", headers=h)).json()
        assert report["overall"]["total"] == len(expected), person
        for name, t in tickets.items():
            r = await client.get(f"/api/v1/tickets/{t['id']}", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)
            r = await client.get(f"/api/v1/tickets/{t['id']}/communications", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)


async def test_writes_follow_the_read_and_write_scopes(client, bus, make_token, add_customer):
    ids, headers, tickets = await setup(client, bus, make_token, add_customer)
    # A support agent reading their team's tickets and writing only their own.
    narrow = bearer(make_token, "support_agent", ids["support"], scp={"tickets": ["team", "own"]})
    outside, teammate, mine = tickets["a1"], tickets["b1"], tickets["support"]
    attempts = (
        ("PATCH", "", {"subject": "x", "version": 1}),
        ("POST", "/status", {"status": "OPEN"}),
        ("POST", "/escalate", {"reason": "r"}),
        ("POST", "/communications", {"body": "hi", "direction": "OUTBOUND", "channel": "EMAIL"}),
    )
    for method, path, body in attempts:
        r = await client.request(method, f"/api/v1/tickets/{outside['id']}{path}", json=body, headers=narrow)
        assert r.status_code == 404, path
        r = await client.request(method, f"/api/v1/tickets/{teammate['id']}{path}", json=body, headers=narrow)
        assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", path
    for name in ("a1", "b1"):
        after = (await client.get(f"/api/v1/tickets/{tickets[name]['id']}", headers=headers["admin"])).json()
        assert after["version"] == tickets[name]["version"] and after["status"] == "NEW"
    r = await client.post(f"/api/v1/tickets/{mine['id']}/status", json={"status": "OPEN"}, headers=narrow)
    assert r.status_code == 200, r.text
    # Sales reads tickets but writes none.
    r = await client.patch(
        f"/api/v1/tickets/{tickets['a2']['id']}", json={"subject": "x", "version": 1}, headers=headers["a1"]
    )
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
