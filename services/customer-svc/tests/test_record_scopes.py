"""Record scopes on customers (issue 13): two teams of two reps, a manager, support, marketing and
read_only, each seeing and changing only what their role's scope allows, on every path."""

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass

import pytest
from crm_common.testing.plugin import team_event

from .conftest import add_user, create, deliver


@dataclass
class World:
    ids: dict[str, uuid.UUID]  # person -> user id
    customers: dict[str, dict]  # name -> customer as created
    headers: dict[str, dict]  # person -> auth headers


async def add_team_of(client, name: str, members: list[uuid.UUID], manager: uuid.UUID | None = None):
    team_id = uuid.uuid4()
    await deliver(client, team_event(team_id, name=name, manager_id=manager, member_ids=members))
    return team_id


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


@pytest.fixture
async def world(client, make_token) -> World:
    ids = {person: await add_user(client, person) for person in ROLES}
    await add_team_of(client, "A", [ids["a1"], ids["a2"]], manager=ids["manager"])
    team_b = await add_team_of(client, "B", [ids["b1"], ids["b2"], ids["support"]])
    # Signed with the roles' own scopes (no `scp` claim: the defaults of crm_common.auth).
    headers = {
        p: {"Authorization": f"Bearer {make_token([role], user_id=ids[p])}"} for p, role in ROLES.items()
    }
    admin = headers["admin"]
    customers = {
        owner: await create(client, admin, lastName=f"of {owner}", assignedToId=str(ids[owner]))
        for owner in ("a1", "a2", "b1", "b2")
    }
    customers["team_b"] = await create(client, admin, lastName="team B's", assignedToId=str(ids["outsider"]))
    r = await client.post(
        f"/api/v1/customers/{customers['team_b']['id']}/assign", json={"teamId": str(team_b)}, headers=admin
    )
    assert r.status_code == 200, r.text
    customers["team_b"] = r.json()
    return World(ids, customers, headers)


VISIBLE = {
    "a1": {"a1", "a2"},
    "a2": {"a1", "a2"},
    "b1": {"b1", "b2", "team_b"},
    "manager": {"a1", "a2"},  # manages team A
    "support": {"b1", "b2", "team_b"},  # a member of team B
    "marketer": set(),  # in no team: only their own
    "reader": {"a1", "a2", "b1", "b2", "team_b"},
    "admin": {"a1", "a2", "b1", "b2", "team_b"},
}


async def test_each_caller_lists_gets_and_counts_only_their_scope(client, world):
    everyone = {name: c["id"] for name, c in world.customers.items()}
    for person, expected in VISIBLE.items():
        h = world.headers[person]
        page = (await client.get("/api/v1/customers", params={"pageSize": 200}, headers=h)).json()
        seen = {name for name, cid in everyone.items() if cid in {i["id"] for i in page["items"]}}
        assert seen == expected, person
        assert page["total"] == len(expected), person
        # A search does not find what the list leaves out.
        found = (await client.get("/api/v1/customers", params={"q": "of b1"}, headers=h)).json()
        assert found["total"] == (1 if "b1" in expected else 0), person
        for name, cid in everyone.items():
            r = await client.get(f"/api/v1/customers/{cid}", headers=h)
            if name in expected:
                assert r.status_code == 200, (person, name)
            else:
                # The same answer as for a customer that does not exist.
                assert r.status_code == 404, (person, name)
                assert r.json()["code"] == "CUSTOMER_NOT_FOUND"
                missing = await client.get(f"/api/v1/customers/{uuid.uuid4()}", headers=h)
                assert {
                    k: v for k, v in r.json().items() if k not in ("detail", "instance", "requestId")
                } == {k: v for k, v in missing.json().items() if k not in ("detail", "instance", "requestId")}


async def test_writes_outside_the_read_scope_are_404_and_change_nothing(client, world):
    a1 = world.headers["a1"]
    theirs = world.customers["b1"]
    r = await client.patch(f"/api/v1/customers/{theirs['id']}", json={"notes": "x", "version": 1}, headers=a1)
    assert r.status_code == 404
    for action, body in (("convert", {}), ("assign", {"assignedToId": str(world.ids["a1"])})):
        r = await client.post(f"/api/v1/customers/{theirs['id']}/{action}", json=body, headers=a1)
        assert r.status_code == 404, action
    merge = {"primaryCustomerId": world.customers["a1"]["id"], "secondaryCustomerId": theirs["id"]}
    r = await client.post("/api/v1/customers/merge", json=merge, headers=a1)
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "secondaryCustomerId"
    after = (await client.get(f"/api/v1/customers/{theirs['id']}", headers=world.headers["admin"])).json()
    assert after["version"] == theirs["version"] and after["status"] == theirs["status"]
    # Within the team scope the rep writes a teammate's customer.
    mate = world.customers["a2"]
    r = await client.patch(f"/api/v1/customers/{mate['id']}", json={"notes": "x", "version": 1}, headers=a1)
    assert r.status_code == 200, r.text


async def test_a_narrower_write_scope_is_403_on_readable_records(client, world, auth_headers):
    # sales_rep reading its team but writing only its own (an admin's PUT /roles gives such tokens).
    scp = {"customers": ["team", "own"]}
    a1 = auth_headers("sales_rep", user_id=world.ids["a1"], scp=scp)
    mine, mate = world.customers["a1"], world.customers["a2"]
    assert (await client.get(f"/api/v1/customers/{mate['id']}", headers=a1)).status_code == 200
    r = await client.patch(f"/api/v1/customers/{mate['id']}", json={"notes": "x", "version": 1}, headers=a1)
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE"
    for action, body in (("convert", {}), ("assign", {"teamId": None})):
        r = await client.post(f"/api/v1/customers/{mate['id']}/{action}", json=body, headers=a1)
        assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", action
    merge = {"primaryCustomerId": mine["id"], "secondaryCustomerId": mate["id"]}
    r = await client.post("/api/v1/customers/merge", json=merge, headers=a1)
    assert r.status_code == 403
    after = (await client.get(f"/api/v1/customers/{mate['id']}", headers=a1)).json()
    assert after["version"] == mate["version"] and after["mergedIntoId"] is None
    r = await client.post(f"/api/v1/customers/{mine['id']}/convert", json={}, headers=a1)
    assert r.status_code == 200, r.text
    # Creating a customer for someone outside the write scope is refused too.
    r = await client.post(
        "/api/v1/customers",
        json={"email": "new@example.com", "firstName": "N", "assignedToId": str(world.ids["a2"])},
        headers=a1,
    )
    assert r.status_code == 403


async def test_read_only_reads_all_and_writes_nothing(client, world):
    h = world.headers["reader"]
    c = world.customers["a1"]
    r = await client.patch(f"/api/v1/customers/{c['id']}", json={"notes": "x", "version": 1}, headers=h)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"


async def test_export_segments_and_import_follow_the_scope(client, world):
    a1 = world.headers["a1"]
    r = await client.get("/api/v1/customers/export", headers=a1)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert sorted(row["email"] for row in rows) == sorted(world.customers[n]["email"] for n in ("a1", "a2"))

    preview = await client.post("/api/v1/customers/segments/preview", json={"filter": {}}, headers=a1)
    assert preview.status_code == 200 and preview.json()["total"] == 2
    seg = await client.post("/api/v1/segments", json={"name": "All leads", "filter": {}}, headers=a1)
    assert seg.status_code == 201, seg.text
    for person, expected in (("a1", 2), ("b1", 3), ("admin", 5)):
        members = await client.get(
            f"/api/v1/segments/{seg.json()['id']}/customers", headers=world.headers[person]
        )
        assert members.json()["total"] == expected, person

    theirs = world.customers["b1"]["email"]
    body = f"email,firstName\n{theirs},Stolen\nfresh@example.com,Fresh\n"
    r = await client.post(
        "/api/v1/customers/import", content=body.encode(), headers={**a1, "Content-Type": "text/csv"}
    )
    report = r.json()
    assert (
        r.status_code == 200 and report["created"] == 1 and report["updated"] == 0 and report["failed"] == 1
    )
    assert report["errors"][0]["code"] == "out_of_scope"
    fresh = (await client.get("/api/v1/customers", params={"q": "fresh@"}, headers=a1)).json()["items"]
    assert [c["assignedToId"] for c in fresh] == [str(world.ids["a1"])]
    untouched = await client.get(
        f"/api/v1/customers/{world.customers['b1']['id']}", headers=world.headers["b1"]
    )
    assert untouched.json()["firstName"] != "Stolen"


async def test_team_membership_follows_the_directory(client, world):
    """A rep who joins team B (a team.updated event) sees team B's customers from then on."""
    h = world.headers["marketer"]
    assert (await client.get("/api/v1/customers", headers=h)).json()["total"] == 0
    members = [world.ids["marketer"], world.ids["b1"]]
    await deliver(client, team_event(name="M", type="MARKETING", member_ids=members))
    page = (await client.get("/api/v1/customers", headers=h)).json()
    assert page["total"] == 1 and page["items"][0]["id"] == world.customers["b1"]["id"]


async def test_batches_and_the_changes_feed_follow_the_scope(client, world, auth_headers):
    a1 = world.headers["a1"]
    everyone = {name: c["id"] for name, c in world.customers.items()}
    r = await client.post("/api/v1/customers/batch/read", json={"ids": list(everyone.values())}, headers=a1)
    assert r.status_code == 200, r.text
    statuses = {name: r.json()["results"][i]["status"] for i, name in enumerate(everyone)}
    assert statuses == {"a1": 200, "a2": 200, "b1": 404, "b2": 404, "team_b": 404}

    items = [{"id": everyone[name], "notes": "batched", "version": 1} for name in ("a2", "b1")]
    r = await client.post("/api/v1/customers/batch/update", json={"items": items}, headers=a1)
    assert [x["status"] for x in r.json()["results"]] == [200, 404]
    theirs = await client.get(f"/api/v1/customers/{everyone['b1']}", headers=world.headers["admin"])
    assert theirs.json()["notes"] != "batched"

    # On Postgres the feed holds back changes younger than a moment (crm_common.pagination.sync_frontier):
    # wait until the admin's feed shows them all, then compare.
    for _ in range(100):
        every = (await client.get("/api/v1/customers/changes", headers=world.headers["admin"])).json()
        if {i["id"] for i in every["items"]} == set(everyone.values()):
            break
        await asyncio.sleep(0.1)
    assert {i["id"] for i in every["items"]} == set(everyone.values())
    feed = (await client.get("/api/v1/customers/changes", headers=a1)).json()
    assert {i["id"] for i in feed["items"]} == {everyone["a1"], everyone["a2"]}
