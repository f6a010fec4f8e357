"""Record scopes on activities (issue 13): by owner, with two teams of two reps, a manager, support,
marketing and read_only: get, list (and totals), feed, timelines, update and the transitions."""

import uuid

from crm_common.testing import plugin as shared

from .conftest import add_user, deliver

BASE = "/api/v1/activities"
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
}
VISIBLE = {
    "a1": {"a1", "a2"},
    "b1": {"b1", "b2"},
    "manager": {"a1", "a2"},  # manages team A
    "support": {"b1", "b2"},  # a member of team B
    "marketer": set(),  # in no team
    "reader": {"a1", "a2", "b1", "b2"},
    "admin": {"a1", "a2", "b1", "b2"},
}


async def setup(client, make_token):
    ids = {person: await add_user(client, person) for person in ROLES}
    for name, members, manager in (("A", ["a1", "a2"], "manager"), ("B", ["b1", "b2", "support"], None)):
        team = shared.team_event(
            name=name, manager_id=ids[manager] if manager else None, member_ids=[ids[m] for m in members]
        )
        await deliver(client, team)
    headers = {
        p: {"Authorization": f"Bearer {make_token([role], user_id=ids[p])}"} for p, role in ROLES.items()
    }
    customer = uuid.uuid4()
    activities = {}
    for owner in ("a1", "a2", "b1", "b2"):
        r = await client.post(
            BASE,
            json={
                "type": "TASK",
                "subject": f"Task of {owner}",
                "startDate": "2026-12-01T09:00:00Z",
                "ownerId": str(ids[owner]),
                "customerId": str(customer),
            },
            headers=headers["admin"],
        )
        assert r.status_code == 201, r.text
        activities[owner] = r.json()
    return ids, headers, customer, activities


async def test_each_caller_sees_only_their_scope(client, make_token):
    _, headers, customer, activities = await setup(client, make_token)
    by_id = {a["id"]: name for name, a in activities.items()}
    for person, expected in VISIBLE.items():
        h = headers[person]
        page = (await client.get(BASE, params={"pageSize": 200}, headers=h)).json()
        assert {by_id[i["id"]] for i in page["items"]} == expected and page["total"] == len(expected), person
        timeline = (await client.get(f"/api/v1/customers/{customer}/timeline", headers=h)).json()
        assert {by_id[i["id"]] for i in timeline["items"]} == expected, person
        feed = (await client.get(f"{BASE}/feed", headers=h)).json()
        assert {by_id[i["id"]] for i in feed["items"]} == expected, person
        for name, a in activities.items():
            r = await client.get(f"{BASE}/{a['id']}", headers=h)
            assert r.status_code == (200 if name in expected else 404), (person, name)


async def test_writes_follow_the_read_and_write_scopes(client, make_token):
    ids, headers, _, activities = await setup(client, make_token)
    a1, theirs, mate = headers["a1"], activities["b1"], activities["a2"]
    for method, path, body in (
        ("PATCH", "", {"subject": "x", "version": 1}),
        ("POST", "/start", None),
        ("POST", "/complete", {}),
        ("POST", "/cancel", {}),
        ("DELETE", "", None),
    ):
        r = await client.request(method, f"{BASE}/{theirs['id']}{path}", json=body, headers=a1)
        assert r.status_code == 404, path
    after = (await client.get(f"{BASE}/{theirs['id']}", headers=headers["admin"])).json()
    assert after["version"] == theirs["version"] and after["status"] == theirs["status"]

    own_writer = {
        "Authorization": f"Bearer {make_token(['sales_rep'], user_id=ids['a1'], scp={'activities': ['team', 'own']})}"
    }
    r = await client.patch(f"{BASE}/{mate['id']}", json={"subject": "x", "version": 1}, headers=own_writer)
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE"
    assert (await client.post(f"{BASE}/{mate['id']}/start", headers=own_writer)).status_code == 403
    assert (
        await client.post(f"{BASE}/{activities['a1']['id']}/start", headers=own_writer)
    ).status_code == 200
    assert (await client.post(f"{BASE}/{mate['id']}/start", headers=a1)).status_code == 200
    r = await client.post(
        BASE,
        json={"type": "TASK", "subject": "t", "startDate": "2026-12-01T09:00:00Z", "ownerId": str(ids["b1"])},
        headers=a1,
    )
    assert r.status_code == 403
    r = await client.patch(
        f"{BASE}/{theirs['id']}", json={"subject": "x", "version": 1}, headers=headers["reader"]
    )
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
