"""Archive, restore and purge tickets (crm_common.archive): hidden from lists and searches, shown on
request, restorable, no writes while archived, purged after the retention with a tombstone and
`ticket.purged`."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from crm_common.pagination import SYNC_SETTLE
from crm_common.settings import ServiceSettings
from ticket_svc.models import Ticket, TicketCommunication
from ticket_svc.service import archiving

RETENTION = timedelta(days=ServiceSettings().archive_retention_days)
BASE = "/api/v1/tickets"


async def listed(client, headers, **params) -> set[str]:
    r = await client.get(BASE, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return {t["id"] for t in r.json()["items"]}


async def test_archive_hides_and_restore_brings_back(client, agent, new_ticket, api):
    tag = uuid.uuid4().hex[:8]
    kept = await new_ticket(subject=f"Kept {tag}")
    gone = await new_ticket(subject=f"Gone {tag}")

    r = await client.post(
        f"{BASE}/{gone['id']}/archive", headers={**agent, "If-Match": f'W/"{gone["version"]}"'}
    )
    assert r.status_code == 200, r.text
    archived = r.json()
    assert archived["archivedAt"] is not None and archived["version"] == gone["version"] + 1

    assert await listed(client, agent, q=tag) == {kept["id"]}
    assert await listed(client, agent, q=tag, archived="only") == {gone["id"]}
    assert await listed(client, agent, q=tag, archived="include") == {kept["id"], gone["id"]}
    assert (await client.get(BASE, params={"archived": ""}, headers=agent)).status_code == 422
    assert (await api.get(gone))["archivedAt"] == archived["archivedAt"]

    again = await client.post(f"{BASE}/{gone['id']}/archive", headers=agent)
    assert again.status_code == 200 and again.json()["version"] == archived["version"]
    communications = await api.count(TicketCommunication)
    for path, body in (
        ("/status", {"status": "RESOLVED"}),
        ("/communications", {"direction": "OUTBOUND", "channel": "EMAIL", "body": "Hi"}),
    ):
        r = await client.post(f"{BASE}/{gone['id']}{path}", json=body, headers=agent)
        assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    r = await client.patch(
        f"{BASE}/{gone['id']}", json={"subject": "Changed", "version": archived["version"]}, headers=agent
    )
    assert r.status_code == 409 and r.json()["code"] == "ARCHIVED", r.text
    unchanged = await api.get(gone)
    assert (unchanged["subject"], unchanged["status"], unchanged["version"]) == (
        gone["subject"],
        gone["status"],
        archived["version"],
    )
    assert await api.count(TicketCommunication) == communications

    r = await client.post(f"{BASE}/{gone['id']}/restore", headers=agent)
    assert r.status_code == 200 and r.json()["archivedAt"] is None, r.text
    assert await listed(client, agent, q=tag) == {kept["id"], gone["id"]}
    assert [e["data"]["ticketId"] for e in await api.events("ticket.archived")] == [gone["id"]]
    assert [e["data"]["ticketId"] for e in await api.events("ticket.restored")] == [gone["id"]]


async def test_archive_needs_write_access_and_scope(client, auth_headers, make_token, new_ticket, api):
    ticket = await new_ticket()
    url = f"{BASE}/{ticket['id']}/archive"
    assert (await client.post(url, headers=auth_headers("read_only"))).status_code == 403
    # Another agent whose scope is their own tickets: not found; one who reads all but writes their own: 403.
    own = {"Authorization": f"Bearer {make_token(['support_agent'], scp={'tickets': ['own', 'own']})}"}
    assert (await client.post(url, headers=own)).status_code == 404
    reads_all = {"Authorization": f"Bearer {make_token(['support_agent'], scp={'tickets': ['all', 'own']})}"}
    r = await client.post(url, headers=reads_all)
    assert r.status_code == 403 and r.json()["code"] == "OUT_OF_SCOPE", r.text
    assert (await api.get(ticket))["archivedAt"] is None


async def test_purge_after_the_retention(client, agent, new_ticket, api):
    ticket = await new_ticket()
    await api.communicate(ticket)
    assert (await client.post(f"{BASE}/{ticket['id']}/archive", headers=agent)).status_code == 200
    db = client.app.state.runtime.db

    assert await archiving.purge(db, RETENTION) == 0
    later = datetime.now(UTC) + RETENTION + timedelta(minutes=1)
    assert await archiving.purge(db, RETENTION, now=later) == 1
    assert (await client.get(f"{BASE}/{ticket['id']}", headers=agent)).status_code == 404
    assert (await client.post(f"{BASE}/{ticket['id']}/restore", headers=agent)).status_code == 404
    assert await api.count(Ticket) == 0 and await api.count(TicketCommunication) == 0
    await asyncio.sleep(SYNC_SETTLE.total_seconds() + 0.2)  # the feed stops short of now on Postgres
    feed = (await client.get(f"{BASE}/changes", headers=agent)).json()
    assert [(i["id"], i.get("deleted")) for i in feed["items"]] == [(ticket["id"], True)]
    purged = await api.events("ticket.purged")
    assert [(e["data"]["ticketId"], e["data"]["ticketNumber"]) for e in purged] == [
        (ticket["id"], ticket["ticketNumber"])
    ]
