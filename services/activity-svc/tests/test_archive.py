"""Archive, restore and purge activities (crm_common.archive): hidden from lists and timelines, shown
on request, restorable, no writes while archived, purged after the retention with a tombstone and
`activity.purged`."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from activity_svc.models import Activity, ActivityParticipant
from activity_svc.service import archiving
from crm_common.pagination import SYNC_SETTLE
from crm_common.settings import ServiceSettings

from .conftest import add_user, count_rows, counts, outbox_payloads
from .test_activities_api import BASE, create, problem

RETENTION = timedelta(days=ServiceSettings().archive_retention_days)


async def listed(client, headers, url=BASE, **params) -> set[str]:
    r = await client.get(url, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {a["id"] for a in r.json()["items"]}


def of_type(client, routing_key):
    async def ids():
        return [
            e["data"]["activityId"]
            for e in await outbox_payloads(client)
            if e["type"] == f"crm.{routing_key}"
        ]

    return ids


async def test_archive_hides_and_restore_brings_back(client, auth_headers):
    headers = auth_headers("sales_rep")
    customer = str(uuid.uuid4())
    kept = await create(client, headers, customerId=customer)
    gone = await create(client, headers, customerId=customer)
    timeline = f"/api/v1/customers/{customer}/timeline"

    r = await client.post(
        f"{BASE}/{gone['id']}/archive", headers={**headers, "If-Match": f'W/"{gone["version"]}"'}
    )
    assert r.status_code == 200, r.text
    archived = r.json()
    assert archived["archivedAt"] is not None and archived["version"] == gone["version"] + 1

    assert await listed(client, headers) == {kept["id"]}
    assert await listed(client, headers, url=timeline) == {kept["id"]}
    assert await listed(client, headers, archived="only") == {gone["id"]}
    assert await listed(client, headers, archived="include") == {kept["id"], gone["id"]}
    assert (await client.get(BASE, params={"archived": "all"}, headers=headers)).status_code == 422
    got = await client.get(f"{BASE}/{gone['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["archivedAt"] == archived["archivedAt"]

    again = await client.post(f"{BASE}/{gone['id']}/archive", headers=headers)
    assert again.status_code == 200 and again.json()["version"] == archived["version"]
    before = await counts(client)
    problem(
        await client.patch(f"{BASE}/{gone['id']}", json={"subject": "Changed"}, headers=headers),
        409,
        "ARCHIVED",
    )
    problem(await client.post(f"{BASE}/{gone['id']}/complete", json={}, headers=headers), 409, "ARCHIVED")
    problem(await client.delete(f"{BASE}/{gone['id']}", headers=headers), 409, "ARCHIVED")
    assert await counts(client) == before
    unchanged = (await client.get(f"{BASE}/{gone['id']}", headers=headers)).json()
    assert (unchanged["subject"], unchanged["version"]) == (gone["subject"], archived["version"])

    r = await client.post(f"{BASE}/{gone['id']}/restore", headers=headers)
    assert r.status_code == 200 and r.json()["archivedAt"] is None, r.text
    assert await listed(client, headers) == {kept["id"], gone["id"]}
    assert await of_type(client, "activity.archived")() == [gone["id"]]
    assert await of_type(client, "activity.restored")() == [gone["id"]]


async def test_archive_needs_write_access_and_scope(client, auth_headers, make_token):
    activity = await create(client, auth_headers("sales_rep"))
    url = f"{BASE}/{activity['id']}/archive"
    assert (await client.post(url, headers=auth_headers("read_only"))).status_code == 403
    other_rep = {"Authorization": f"Bearer {make_token(['sales_rep'])}"}  # the role's own scope
    assert (await client.post(url, headers=other_rep)).status_code == 404
    assert (await client.get(f"{BASE}/{activity['id']}", headers=auth_headers())).json()["archivedAt"] is None


async def test_purge_after_the_retention(client, auth_headers):
    headers = auth_headers("sales_rep")
    guest = await add_user(client, "Gus Guest")
    activity = await create(client, headers, participantIds=[str(guest)])
    assert (await client.post(f"{BASE}/{activity['id']}/archive", headers=headers)).status_code == 200
    db = client.app.state.runtime.db

    assert await archiving.purge(db, RETENTION) == 0
    later = datetime.now(UTC) + RETENTION + timedelta(minutes=1)
    assert await archiving.purge(db, RETENTION, now=later) == 1
    assert (await client.get(f"{BASE}/{activity['id']}", headers=headers)).status_code == 404
    assert (await client.post(f"{BASE}/{activity['id']}/restore", headers=headers)).status_code == 404
    assert await count_rows(client, Activity) == 0 and await count_rows(client, ActivityParticipant) == 0
    await asyncio.sleep(SYNC_SETTLE.total_seconds() + 0.2)  # the feed stops short of now on Postgres
    feed = (await client.get(f"{BASE}/changes", headers=headers)).json()
    assert [(i["id"], i.get("deleted")) for i in feed["items"]] == [(activity["id"], True)]
    assert await of_type(client, "activity.purged")() == [activity["id"]]
