"""Archive, restore and purge customers (crm_common.archive): hidden from lists and searches, shown
on request, restorable, no writes while archived, purged after the retention with a tombstone."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from crm_common.events.envelope import new_event
from crm_common.settings import ServiceSettings
from crm_common.testing.plugin import eventually, running
from customer_svc.app import create_app
from customer_svc.models import Customer, CustomerAddress
from customer_svc.service import archiving

from .conftest import count_rows, create, deliver, opportunity_event, outbox_payloads
from .test_sync_list import settled

RETENTION = timedelta(days=ServiceSettings().archive_retention_days)


async def listed(client, headers, **params) -> set[str]:
    r = await client.get("/api/v1/customers", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


async def test_archive_hides_from_lists_and_restore_brings_back(client, auth_headers):
    headers = auth_headers()
    tag = uuid.uuid4().hex[:8]
    kept = await create(client, headers, lastName=f"Kept {tag}")
    gone = await create(client, headers, lastName=f"Gone {tag}")

    r = await client.post(
        f"/api/v1/customers/{gone['id']}/archive", headers={**headers, "If-Match": f'W/"{gone["version"]}"'}
    )
    assert r.status_code == 200, r.text
    archived = r.json()
    assert archived["archivedAt"] is not None and archived["version"] == gone["version"] + 1
    assert r.headers["ETag"] == f'W/"{archived["version"]}"'

    assert await listed(client, headers, q=tag) == {kept["id"]}
    assert await listed(client, headers, q=tag, archived="only") == {gone["id"]}
    assert await listed(client, headers, q=tag, archived="include") == {kept["id"], gone["id"]}
    r = await client.get("/api/v1/customers", params={"archived": "yes"}, headers=headers)
    assert r.status_code == 422
    got = await client.get(f"/api/v1/customers/{gone['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["archivedAt"] == archived["archivedAt"]

    again = await client.post(f"/api/v1/customers/{gone['id']}/archive", headers=headers)
    assert again.status_code == 200 and again.json()["version"] == archived["version"]

    r = await client.patch(f"/api/v1/customers/{gone['id']}", json={"firstName": "Changed"}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    r = await client.post(f"/api/v1/customers/{gone['id']}/convert", json={}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    unchanged = (await client.get(f"/api/v1/customers/{gone['id']}", headers=headers)).json()
    assert unchanged["firstName"] == gone["firstName"] and unchanged["version"] == archived["version"]

    r = await client.post(f"/api/v1/customers/{gone['id']}/restore", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["archivedAt"] is None and r.json()["version"] == archived["version"] + 1
    assert await listed(client, headers, q=tag) == {kept["id"], gone["id"]}

    archived_events = await outbox_payloads(client, "customer.archived")
    restored_events = await outbox_payloads(client, "customer.restored")
    assert [e["data"]["customerId"] for e in archived_events] == [gone["id"]]  # the repeat published nothing
    assert [e["data"]["customerId"] for e in restored_events] == [gone["id"]]
    assert archived_events[0]["data"]["archivedAt"] is not None


async def test_archive_needs_write_access_and_scope(client, auth_headers, make_token):
    admin = auth_headers()
    owner = uuid.uuid4()
    customer = await create(client, admin, assignedToId=str(owner))
    url = f"/api/v1/customers/{customer['id']}/archive"

    r = await client.post(url, headers=auth_headers("read_only"))
    assert r.status_code == 403, r.text
    other_rep = {"Authorization": f"Bearer {make_token(['sales_rep'])}"}  # the role's own scope: own
    r = await client.post(url, headers=other_rep)
    assert r.status_code == 404, r.text
    r = await client.post(url, headers={**admin, "If-Match": 'W/"99"'})
    assert r.status_code == 412, r.text
    assert (await client.get(f"/api/v1/customers/{customer['id']}", headers=admin)).json()[
        "archivedAt"
    ] is None


async def test_purge_after_the_retention_leaves_a_tombstone(client, auth_headers):
    headers = auth_headers()
    customer = await create(client, headers, addresses=[{"type": "HOME", "city": "Oslo"}])
    r = await client.post(f"/api/v1/customers/{customer['id']}/archive", headers=headers)
    assert r.status_code == 200
    db = client.app.state.runtime.db

    assert await archiving.purge(db, RETENTION) == 0  # archived just now: still restorable
    await settled(client)
    feed = (await client.get("/api/v1/customers/changes", headers=headers)).json()
    assert [(i["id"], i.get("archivedAt") is not None) for i in feed["items"]] == [(customer["id"], True)]

    later = datetime.now(UTC) + RETENTION + timedelta(minutes=1)
    assert await archiving.purge(db, RETENTION, now=later) == 1
    assert (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).status_code == 404
    r = await client.post(f"/api/v1/customers/{customer['id']}/restore", headers=headers)
    assert r.status_code == 404
    assert await count_rows(client) == 0 and await count_rows(client, CustomerAddress) == 0
    await settled(client)
    feed = (
        await client.get("/api/v1/customers/changes", params={"cursor": feed["next"]}, headers=headers)
    ).json()
    assert feed["items"][-1] == {
        "id": customer["id"],
        "deleted": True,
        "mergedInto": None,
        "deletedAt": feed["items"][-1]["deletedAt"],
    }
    purged = await outbox_payloads(client, "customer.purged")
    assert [e["data"]["customerId"] for e in purged] == [customer["id"]]


async def test_a_purged_opportunity_leaves_the_customers_totals(client, auth_headers):
    headers = auth_headers()
    customer = await create(client, headers)
    opportunity_id = uuid.uuid4()
    await deliver(client, opportunity_event(customer["id"], amount="100.00", opportunity_id=opportunity_id))
    got = (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).json()
    assert got["totalValue"] == "100.00"

    purged = new_event(
        "opportunity.purged",
        service="pipeline",
        subject=opportunity_id,
        data={
            "opportunityId": str(opportunity_id),
            "customerId": customer["id"],
            "archivedAt": "2026-01-01T00:00:00Z",
            "purgedAt": "2026-02-01T00:00:00Z",
        },
        sequence=3,
    )
    late = opportunity_event(
        customer["id"],
        amount="100.00",
        opportunity_id=opportunity_id,
        sequence=2,
        routing_key="opportunity.updated",
    )
    await deliver(client, purged, late)
    got = (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).json()
    assert got["totalValue"] == "0.00" and got["valueTotals"] == []


async def test_the_service_purges_on_its_own(settings_with, bus, auth_headers):
    """The periodic task create_service_app starts: with a short interval, a customer archived longer
    than the retention ago goes without anyone calling the purge."""
    settings = settings_with(archive_retention_days=2, archive_purge_interval_seconds=0.1)
    headers = auth_headers()
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        old = await create(client, headers)
        recent = await create(client, headers)
        for customer in (old, recent):
            assert (
                await client.post(f"/api/v1/customers/{customer['id']}/archive", headers=headers)
            ).status_code == 200
        async with app.state.runtime.db.transaction() as s:
            await s.execute(
                sa.update(Customer)
                .where(Customer.id == uuid.UUID(old["id"]))
                .values(archived_at=datetime.now(UTC) - timedelta(days=3))
            )

        async def gone():
            return (await client.get(f"/api/v1/customers/{old['id']}", headers=headers)).status_code == 404

        assert await eventually(gone)
        assert (await client.get(f"/api/v1/customers/{recent['id']}", headers=headers)).status_code == 200
