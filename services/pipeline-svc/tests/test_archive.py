"""Archive, restore and purge opportunities (crm_common.archive): hidden from lists, the board and
the forecast, shown on request, restorable, no writes while archived, purged after the retention with
a tombstone and `opportunity.purged`."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from crm_common.events.envelope import new_event
from crm_common.pagination import SYNC_SETTLE
from crm_common.settings import ServiceSettings
from crm_common.testing.plugin import count_rows, outbox_payloads, publish
from pipeline_svc.models import Opportunity, OpportunityProduct
from pipeline_svc.service import archiving

RETENTION = timedelta(days=ServiceSettings().archive_retention_days)


async def listed(client, headers, **params) -> set[str]:
    r = await client.get("/api/v1/opportunities", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {o["id"] for o in r.json()["items"]}


async def board_count(client, headers) -> int:
    r = await client.get("/api/v1/opportunities/board", headers=headers)
    assert r.status_code == 200, r.text
    columns = r.json()["columns"]
    assert sum(len(c["cards"]) for c in columns) == sum(c["summary"]["count"] for c in columns)
    return sum(c["summary"]["count"] for c in columns)


async def test_archive_hides_and_restore_brings_back(client, auth_headers, new_opportunity):
    headers = auth_headers("sales_rep")
    tag = uuid.uuid4().hex[:8]
    kept = await new_opportunity(title=f"Kept {tag}", amount="10.00")
    gone = await new_opportunity(title=f"Gone {tag}", amount="20.00")
    assert await board_count(client, headers) == 2

    r = await client.post(
        f"/api/v1/opportunities/{gone['id']}/archive",
        headers={**headers, "If-Match": f'W/"{gone["version"]}"'},
    )
    assert r.status_code == 200, r.text
    archived = r.json()
    assert archived["archivedAt"] is not None and archived["version"] == gone["version"] + 1

    assert await listed(client, headers, q=tag) == {kept["id"]}
    assert await listed(client, headers, q=tag, archived="only") == {gone["id"]}
    assert await listed(client, headers, q=tag, archived="include") == {kept["id"], gone["id"]}
    assert (
        await client.get("/api/v1/opportunities", params={"archived": "1"}, headers=headers)
    ).status_code == 422
    assert await board_count(client, headers) == 1  # the triggers' totals, less the archived one
    got = await client.get(f"/api/v1/opportunities/{gone['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["archivedAt"] == archived["archivedAt"]

    again = await client.post(f"/api/v1/opportunities/{gone['id']}/archive", headers=headers)
    assert again.status_code == 200 and again.json()["version"] == archived["version"]
    for method, path, body in (
        ("PATCH", "", {"title": "Changed"}),
        ("POST", "/win", {}),
    ):
        r = await client.request(
            method, f"/api/v1/opportunities/{gone['id']}{path}", json=body, headers=headers
        )
        assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    unchanged = (await client.get(f"/api/v1/opportunities/{gone['id']}", headers=headers)).json()
    assert (unchanged["title"], unchanged["status"], unchanged["version"]) == (
        gone["title"],
        "OPEN",
        archived["version"],
    )

    r = await client.post(f"/api/v1/opportunities/{gone['id']}/restore", headers=headers)
    assert r.status_code == 200 and r.json()["archivedAt"] is None, r.text
    assert await listed(client, headers, q=tag) == {kept["id"], gone["id"]}
    assert await board_count(client, headers) == 2

    assert [e["data"]["opportunityId"] for e in await outbox_payloads(client, "opportunity.archived")] == [
        gone["id"]
    ]
    assert [e["data"]["opportunityId"] for e in await outbox_payloads(client, "opportunity.restored")] == [
        gone["id"]
    ]


async def test_archive_needs_write_access_and_scope(client, auth_headers, make_token, new_opportunity):
    opportunity = await new_opportunity()
    url = f"/api/v1/opportunities/{opportunity['id']}/archive"
    assert (await client.post(url, headers=auth_headers("read_only"))).status_code == 403
    other_rep = {"Authorization": f"Bearer {make_token(['sales_rep'])}"}  # the role's own scope
    assert (await client.post(url, headers=other_rep)).status_code == 404
    r = await client.get(f"/api/v1/opportunities/{opportunity['id']}", headers=auth_headers("sales_rep"))
    assert r.json()["archivedAt"] is None


async def test_purge_after_the_retention(client, auth_headers, new_opportunity, new_product):
    headers = auth_headers("sales_rep")
    opportunity = await new_opportunity()
    product = await new_product()
    r = await client.post(
        f"/api/v1/opportunities/{opportunity['id']}/products",
        json={"productId": product["id"], "quantity": "1"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/opportunities/{opportunity['id']}/archive", headers=headers)
    assert r.status_code == 200
    db = client.app.state.runtime.db

    assert await archiving.purge(db, RETENTION) == 0
    later = datetime.now(UTC) + RETENTION + timedelta(minutes=1)
    assert await archiving.purge(db, RETENTION, now=later) == 1
    assert (
        await client.get(f"/api/v1/opportunities/{opportunity['id']}", headers=headers)
    ).status_code == 404
    assert (
        await client.post(f"/api/v1/opportunities/{opportunity['id']}/restore", headers=headers)
    ).status_code == 404
    assert await count_rows(client, Opportunity) == 0 and await count_rows(client, OpportunityProduct) == 0
    assert await board_count(client, headers) == 0
    await asyncio.sleep(SYNC_SETTLE.total_seconds() + 0.2)  # the feed stops short of now on Postgres
    feed = (await client.get("/api/v1/opportunities/changes", headers=headers)).json()
    assert [(i["id"], i.get("deleted")) for i in feed["items"]] == [(opportunity["id"], True)]
    purged = await outbox_payloads(client, "opportunity.purged")
    assert [(e["data"]["opportunityId"], e["data"]["customerId"]) for e in purged] == [
        (opportunity["id"], opportunity["customerId"])
    ]
    assert purged[0]["sequence"] > r.json()["version"]


async def test_a_purged_customer_is_forgotten_as_if_deleted(client, auth_headers, new_customer):
    """customer.purged (customer-svc's archive purge): the customer read model drops it, so a new
    opportunity for it is refused like one for a customer that never existed."""
    headers = auth_headers("sales_rep")
    customer_id = await new_customer()
    r = await client.post(
        "/api/v1/opportunities", json={"title": "Before", "customerId": str(customer_id)}, headers=headers
    )
    assert r.status_code == 201, r.text
    purged = new_event(
        "customer.purged",
        service="customer",
        subject=customer_id,
        data={
            "customerId": str(customer_id),
            "customerNumber": "CUST-2026-000001",
            "archivedAt": "2026-01-01T00:00:00Z",
            "purgedAt": "2026-02-01T00:00:00Z",
        },
        sequence=3,
    )
    await publish(client.bus, purged)
    r = await client.post(
        "/api/v1/opportunities", json={"title": "After", "customerId": str(customer_id)}, headers=headers
    )
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_CUSTOMER", r.text
