"""Incremental sync on every list of records, through the gateway: `updatedAfter` / `createdAfter`
(RFC 3339, 422 otherwise) and cursor mode, one implementation (crm_common.pagination) everywhere."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_dashboard import settings_for

SERVICES = ("customer", "pipeline", "activity", "ticket", "campaign")


@pytest.fixture
async def world(tmp_path):
    """One record in every list, and the paths of those lists."""
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as gw:
        admin = await login(gw)

        async def post(path, body):
            r = await gw.post(f"/api/v1{path}", json=body, headers=admin)
            assert r.status_code in (200, 201), r.text
            return r.json()

        customer = await post("/customers", {"firstName": "Ada", "email": "ada@example.com"})
        opportunity = await post(
            "/opportunities", {"title": "Deal", "customerId": customer["id"], "amount": "10.00"}
        )
        activity = await post(
            "/activities",
            {
                "type": "CALL",
                "subject": "Call",
                "customerId": customer["id"],
                "startDate": "2030-01-01T10:00:00Z",
            },
        )
        ticket = await post(
            "/tickets",
            {"subject": "Help", "description": "x", "customerId": customer["id"], "type": "QUESTION"},
        )
        communication = await post(
            f"/tickets/{ticket['id']}/communications",
            {"direction": "OUTBOUND", "channel": "EMAIL", "body": "On it."},
        )
        campaign = await post("/campaigns", {"name": "Spring", "type": "EMAIL"})
        await post(f"/campaigns/{campaign['id']}/targets", {"customerIds": [customer["id"]]})

        async def reactions_landed():
            # The opportunity's totals and the communication's lastContactDate reach the customer by
            # events; each is a change of the customer (updatedAt moves), so the feeds are read after.
            r = await gw.get(f"/api/v1/customers/{customer['id']}", headers=admin)
            return r.json()["totalValue"] == "10.00" and r.json()["lastContactDate"] is not None

        assert await eventually(reactions_landed)
        lists = {
            "/customers": customer["id"],
            "/opportunities": opportunity["id"],
            "/activities": activity["id"],
            f"/customers/{customer['id']}/timeline": activity["id"],
            "/tickets": ticket["id"],
            f"/tickets/{ticket['id']}/communications": communication["id"],
            "/campaigns": campaign["id"],
            f"/campaigns/{campaign['id']}/targets": None,
        }
        yield gw, admin, lists


async def test_every_list_pages_by_cursor_and_filters_by_time(world):
    gw, admin, lists = world
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = "2000-01-01T00:00:00Z"
    for path, record_id in lists.items():
        r = await gw.get(f"/api/v1{path}", params={"cursor": "", "pageSize": 1}, headers=admin)
        assert r.status_code == 200, (path, r.text)
        first = r.json()
        assert len(first["items"]) == 1, path
        if record_id is not None:
            ids = {i["id"] for i in first["items"]}
            cursor = first.get("next")
            while cursor:
                r = await gw.get(f"/api/v1{path}", params={"cursor": cursor, "pageSize": 1}, headers=admin)
                assert r.status_code == 200, (path, r.text)
                ids |= {i["id"] for i in r.json()["items"]}
                cursor = r.json().get("next")
            assert record_id in ids, path
        for name in ("updatedAfter", "createdAfter"):
            r = await gw.get(f"/api/v1{path}", params={name: future}, headers=admin)
            assert r.status_code == 200 and r.json()["items"] == [], (path, name, r.text)
            r = await gw.get(f"/api/v1{path}", params={name: past}, headers=admin)
            assert r.status_code == 200 and r.json()["items"], (path, name, r.text)
            assert "next" not in r.json(), path
            r = await gw.get(f"/api/v1{path}", params={name: "last tuesday"}, headers=admin)
            assert r.status_code == 422, (path, r.text)
            assert [e["field"] for e in r.json()["errors"]] == [name], path


async def feed(gw, admin, path, cursor=""):
    """Every change of one feed after `cursor`, page by page; the items and the cursor to resume from."""
    items = []
    while True:
        r = await gw.get(f"/api/v1{path}/changes", params={"cursor": cursor, "pageSize": 2}, headers=admin)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        items += body["items"]
        cursor = body["next"]
        if not body["hasMore"]:
            return items, cursor


async def test_changes_feeds_carry_records_and_tombstones(world):
    gw, admin, lists = world
    customer_id = lists["/customers"]
    for path, record_id in (
        ("/customers", customer_id),
        ("/opportunities", lists["/opportunities"]),
        ("/activities", lists["/activities"]),
        ("/tickets", lists["/tickets"]),
        ("/campaigns", lists["/campaigns"]),
    ):
        items, cursor = await feed(gw, admin, path)
        ids = [i["id"] for i in items]
        # (activities also holds the system notes the events wrote)
        assert record_id in ids and len(ids) == len(set(ids)), path
        assert not any("deleted" in i for i in items), path
        again, _ = await feed(gw, admin, path, cursor)
        assert record_id not in [i["id"] for i in again], path

    # A merge leaves a tombstone naming the survivor; the survivor and what moved to it come again.
    _, customers_at = await feed(gw, admin, "/customers")
    _, tickets_at = await feed(gw, admin, "/tickets")
    _, activities_at = await feed(gw, admin, "/activities")
    r = await gw.post("/api/v1/customers", json={"firstName": "Bo", "email": "bo@example.com"}, headers=admin)
    survivor = r.json()["id"]
    r = await gw.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": survivor, "secondaryCustomerId": customer_id},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    items, _ = await feed(gw, admin, "/customers", customers_at)
    assert {"id": customer_id, "deleted": True, "mergedInto": survivor} in [
        {k: i.get(k) for k in ("id", "deleted", "mergedInto")} for i in items
    ]
    assert survivor in [i["id"] for i in items if not i.get("deleted")]
    # Other contexts re-point their records on customer.merged; the feeds show the move.
    for path, at in (("/tickets", tickets_at), ("/activities", activities_at)):
        for _ in range(100):
            items, _ = await feed(gw, admin, path, at)
            if any(i.get("customerId") == survivor for i in items):
                break
            await asyncio.sleep(0.1)
        assert [i["customerId"] for i in items if i["id"] == lists[path]] == [survivor], path

    # Deletions leave tombstones.
    _, activities_at = await feed(gw, admin, "/activities")
    r = await gw.delete(f"/api/v1/activities/{lists['/activities']}", headers=admin)
    assert r.status_code == 204, r.text
    items, _ = await feed(gw, admin, "/activities", activities_at)
    assert [(i["id"], i.get("deleted"), i.get("mergedInto")) for i in items][-1] == (
        lists["/activities"],
        True,
        None,
    )
    _, campaigns_at = await feed(gw, admin, "/campaigns")
    r = await gw.delete(f"/api/v1/campaigns/{lists['/campaigns']}", headers=admin)
    assert r.status_code == 204, r.text
    items, _ = await feed(gw, admin, "/campaigns", campaigns_at)
    assert [(i["id"], i.get("deleted")) for i in items] == [(lists["/campaigns"], True)]

    r = await gw.get("/api/v1/customers/changes", params={"cursor": "garbage"}, headers=admin)
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["cursor"], r.text
