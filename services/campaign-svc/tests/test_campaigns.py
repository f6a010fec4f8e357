import uuid
from datetime import timedelta

from campaign_svc.models import Campaign

from .conftest import NOW, add_user, count_rows, create_campaign, iso, outbox_payloads


async def test_create_read_list_update(client, headers):
    c = await create_campaign(
        client,
        headers,
        budget="1000.00",
        actualCost="250.50",
        expectedRevenue="5000",
        expectedLeads=10,
        startDate=iso(NOW),
        endDate=iso(NOW + timedelta(days=30)),
        channels=["email"],
    )
    assert c["status"] == "PLANNING" and c["budget"] == "1000.00" and c["actualCost"] == "250.50"
    # Amounts are answered with two places whatever the places sent, as in the other services.
    assert c["expectedRevenue"] == "5000.00"
    assert c["version"] == 1 and c["sentCount"] == 0 and c["currency"] == "USD"
    r = await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)
    assert r.status_code == 200 and r.headers["ETag"] == 'W/"1"'
    r = await client.get("/api/v1/campaigns", params={"status": "PLANNING", "sort": "name"}, headers=headers)
    assert r.json()["total"] == 1
    r = await client.patch(
        f"/api/v1/campaigns/{c['id']}", json={"name": "Renamed"}, headers={**headers, "If-Match": 'W/"1"'}
    )
    assert r.status_code == 200 and r.json()["name"] == "Renamed" and r.json()["version"] == 2
    # stale
    r = await client.patch(f"/api/v1/campaigns/{c['id']}", json={"name": "X", "version": 1}, headers=headers)
    assert r.status_code == 412 and r.json()["code"] == "VERSION_CONFLICT"
    r = await client.patch(f"/api/v1/campaigns/{c['id']}", json={"name": "X"}, headers=headers)
    assert r.status_code == 428


async def test_validation(client, headers):
    bad = [
        {"name": "A", "type": "EMAIL", "budget": "-1"},
        {"name": "A", "type": "EMAIL", "actualCost": "-0.01"},
        {"name": "A", "type": "FAX"},
        {"name": "A", "type": "EMAIL", "startDate": iso(NOW), "endDate": iso(NOW - timedelta(days=1))},
        {"name": "", "type": "EMAIL"},
        {"name": "A", "type": "EMAIL", "surprise": 1},
        {"name": "A", "type": "EMAIL", "ownerId": str(uuid.uuid4())},
    ]
    for body in bad:
        r = await client.post("/api/v1/campaigns", json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
    r = await client.post("/api/v1/campaigns", json=bad[3], headers=headers)
    assert r.json()["errors"][0]["field"] == "endDate"
    assert await count_rows(client, Campaign) == 0
    c = await create_campaign(client, headers, startDate=iso(NOW))
    r = await client.patch(
        f"/api/v1/campaigns/{c['id']}",
        json={"endDate": iso(NOW - timedelta(days=2)), "version": 1},
        headers=headers,
    )
    assert r.status_code == 422
    r = await client.patch(
        f"/api/v1/campaigns/{c['id']}", json={"budget": "-5", "version": 1}, headers=headers
    )
    assert r.status_code == 422
    r = await client.get(f"/api/v1/campaigns/{uuid.uuid4()}", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "CAMPAIGN_NOT_FOUND"


async def test_owner_must_be_active_user(client, headers):
    owner = await add_user(client)
    c = await create_campaign(client, headers, ownerId=str(owner))
    assert c["ownerId"] == str(owner)


async def test_permissions(client, auth_headers):
    r = await client.get("/api/v1/campaigns", headers=auth_headers("support_agent"))
    assert r.status_code == 403
    r = await client.get("/api/v1/campaigns")
    assert r.status_code == 401


async def test_transitions_and_events(client, headers):
    c = await create_campaign(client, headers)
    cid = c["id"]
    r = await client.post(f"/api/v1/campaigns/{cid}/pause", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "INVALID_STATUS_TRANSITION"
    assert (r.json()["status"], r.json()["currentStatus"]) == (409, "PLANNING")
    r = await client.post(f"/api/v1/campaigns/{cid}/activate", headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE" and r.json()["startDate"]
    r = await client.post(f"/api/v1/campaigns/{cid}/pause", json={"version": 1}, headers=headers)
    assert r.status_code == 412
    r = await client.post(f"/api/v1/campaigns/{cid}/pause", headers=headers)
    assert r.json()["status"] == "PAUSED"
    r = await client.post(f"/api/v1/campaigns/{cid}/activate", headers=headers)
    assert r.json()["status"] == "ACTIVE"
    r = await client.post(f"/api/v1/campaigns/{cid}/complete", headers=headers)
    assert r.json()["status"] == "COMPLETED"
    for action in ("activate", "pause", "cancel", "complete"):
        r = await client.post(f"/api/v1/campaigns/{cid}/{action}", headers=headers)
        assert r.status_code == 409, action
    activated = await outbox_payloads(client, "campaign.activated")
    completed = await outbox_payloads(client, "campaign.completed")
    assert len(activated) == 2 and len(completed) == 1
    assert completed[0]["data"]["campaignId"] == cid and completed[0]["data"]["status"] == "COMPLETED"
    r = await client.delete(f"/api/v1/campaigns/{cid}", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "CAMPAIGN_NOT_DELETABLE"
    r = await client.patch(f"/api/v1/campaigns/{cid}", json={"name": "late", "version": 5}, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "CAMPAIGN_CLOSED"
    r = await client.patch(
        f"/api/v1/campaigns/{cid}", json={"actualCost": "99.00", "version": 5}, headers=headers
    )
    assert r.status_code == 200 and r.json()["actualCost"] == "99.00"


async def test_cancel_and_delete(client, headers):
    c = await create_campaign(client, headers)
    r = await client.post(f"/api/v1/campaigns/{c['id']}/cancel", headers=headers)
    assert r.json()["status"] == "CANCELLED"
    r = await client.delete(f"/api/v1/campaigns/{c['id']}", headers=headers)
    assert r.status_code == 204
    assert await count_rows(client, Campaign) == 0


async def test_idempotent_create(client, headers):
    h = {**headers, "Idempotency-Key": "k-1"}
    body = {"name": "Once", "type": "SMS"}
    first = await client.post("/api/v1/campaigns", json=body, headers=h)
    again = await client.post("/api/v1/campaigns", json=body, headers=h)
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert await count_rows(client, Campaign) == 1


async def test_a_null_body_is_refused_not_taken_for_no_body(client, headers):
    """The body of a transition is optional, but when sent it is an object: `null` is a 422 and the
    campaign does not move (FastAPI alone read `null` as no body and completed the campaign)."""
    c = await create_campaign(client, headers)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/activate",
        content=b" null ",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [("body", "body_null")]
    r = await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)
    assert r.json()["status"] == "PLANNING"
    # A small body that is not null still reaches the route whole.
    r = await client.post(f"/api/v1/campaigns/{c['id']}/activate", json={}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE"


async def test_patch_tells_null_from_not_sent(client, headers):
    """A field left out of a PATCH stays as it is; null clears a field that may be empty and is a
    422 (`null`) for one that may not, with nothing changed."""
    c = await create_campaign(
        client, headers, description="Spring mailing", budget="100.00", channels=["email"]
    )
    url = f"/api/v1/campaigns/{c['id']}"
    r = await client.patch(
        url, json={"name": None, "type": None, "channels": None, "version": 1}, headers=headers
    )
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")
    assert sorted((e["field"], e["code"]) for e in r.json()["errors"]) == [
        ("channels", "null"),
        ("name", "null"),
        ("type", "null"),
    ]
    after = (await client.get(url, headers=headers)).json()
    assert (after["name"], after["type"], after["channels"], after["version"]) == (
        "Spring launch",
        "EMAIL",
        ["email"],
        1,
    )
    r = await client.patch(url, json={"description": None, "version": 1}, headers=headers)
    assert r.status_code == 200, r.text
    assert (r.json()["description"], r.json()["budget"], r.json()["name"]) == (
        None,
        "100.00",
        "Spring launch",
    )
