"""Archive, restore and purge campaigns (crm_common.archive): hidden from lists and searches, shown
on request, restorable, no writes while archived, purged after the retention (members too) with a
tombstone and `campaign.purged`."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from campaign_svc.models import Campaign, CampaignTarget
from campaign_svc.service import archiving
from crm_common.pagination import SYNC_SETTLE
from crm_common.settings import ServiceSettings

from .conftest import count_rows, create_campaign, outbox_payloads, with_targets

RETENTION = timedelta(days=ServiceSettings().archive_retention_days)
BASE = "/api/v1/campaigns"


async def listed(client, headers, **params) -> set[str]:
    r = await client.get(BASE, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {c["id"] for c in r.json()["items"]}


async def test_archive_hides_and_restore_brings_back(client, headers):
    tag = uuid.uuid4().hex[:8]
    kept = await create_campaign(client, headers, name=f"Kept {tag}")
    gone = await create_campaign(client, headers, name=f"Gone {tag}")

    r = await client.post(
        f"{BASE}/{gone['id']}/archive", headers={**headers, "If-Match": f'W/"{gone["version"]}"'}
    )
    assert r.status_code == 200, r.text
    archived = r.json()
    assert archived["archivedAt"] is not None and archived["version"] == gone["version"] + 1

    assert await listed(client, headers, q=tag) == {kept["id"]}
    assert await listed(client, headers, q=tag, archived="only") == {gone["id"]}
    assert await listed(client, headers, q=tag, archived="include") == {kept["id"], gone["id"]}
    assert (await client.get(BASE, params={"archived": "ONLY"}, headers=headers)).status_code == 422
    got = await client.get(f"{BASE}/{gone['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["archivedAt"] == archived["archivedAt"]

    again = await client.post(f"{BASE}/{gone['id']}/archive", headers=headers)
    assert again.status_code == 200 and again.json()["version"] == archived["version"]
    for method, path, body in (
        ("PATCH", "", {"name": "Changed"}),
        ("POST", "/activate", None),
        ("DELETE", "", None),
    ):
        r = await client.request(method, f"{BASE}/{gone['id']}{path}", json=body, headers=headers)
        assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    unchanged = (await client.get(f"{BASE}/{gone['id']}", headers=headers)).json()
    assert (unchanged["name"], unchanged["status"], unchanged["version"]) == (
        gone["name"],
        "PLANNING",
        archived["version"],
    )

    r = await client.post(f"{BASE}/{gone['id']}/restore", headers=headers)
    assert r.status_code == 200 and r.json()["archivedAt"] is None, r.text
    assert await listed(client, headers, q=tag) == {kept["id"], gone["id"]}
    assert [e["data"]["campaignId"] for e in await outbox_payloads(client, "campaign.archived")] == [
        gone["id"]
    ]
    assert [e["data"]["campaignId"] for e in await outbox_payloads(client, "campaign.restored")] == [
        gone["id"]
    ]


async def test_archive_needs_write_access_and_scope(client, headers, auth_headers, make_token):
    campaign = await create_campaign(client, headers)
    url = f"{BASE}/{campaign['id']}/archive"
    assert (await client.post(url, headers=auth_headers("read_only"))).status_code == 403
    other = {"Authorization": f"Bearer {make_token(['marketer'], scp={'campaigns': ['own', 'own']})}"}
    assert (await client.post(url, headers=other)).status_code == 404
    reads_all = {"Authorization": f"Bearer {make_token(['marketer'], scp={'campaigns': ['all', 'own']})}"}
    r = await client.post(url, headers=reads_all)
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", r.text
    assert (await client.get(f"{BASE}/{campaign['id']}", headers=headers)).json()["archivedAt"] is None


async def test_purge_after_the_retention(client, headers):
    campaign = await create_campaign(client, headers)
    await with_targets(client, headers, campaign["id"], n=2)
    assert (await client.post(f"{BASE}/{campaign['id']}/archive", headers=headers)).status_code == 200
    db = client.app.state.runtime.db

    assert await archiving.purge(db, RETENTION) == 0
    later = datetime.now(UTC) + RETENTION + timedelta(minutes=1)
    assert await archiving.purge(db, RETENTION, now=later) == 1
    assert (await client.get(f"{BASE}/{campaign['id']}", headers=headers)).status_code == 404
    assert (await client.post(f"{BASE}/{campaign['id']}/restore", headers=headers)).status_code == 404
    assert await count_rows(client, Campaign) == 0 and await count_rows(client, CampaignTarget) == 0
    await asyncio.sleep(SYNC_SETTLE.total_seconds() + 0.2)  # the feed stops short of now on Postgres
    feed = (await client.get(f"{BASE}/changes", headers=headers)).json()
    assert [(i["id"], i.get("deleted")) for i in feed["items"]] == [(campaign["id"], True)]
    purged = await outbox_payloads(client, "campaign.purged")
    assert [(e["data"]["campaignId"], e["data"]["name"]) for e in purged] == [
        (campaign["id"], campaign["name"])
    ]
