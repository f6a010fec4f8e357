"""Erasing a person (GDPR art. 17, issue 17 item 4) in the embedded default, every service running:
a customer with distinctive personal strings in every context (customer record, addresses, notes,
activities, a ticket and what the customer wrote on it, an opportunity, a campaign membership, a
webhook delivery log, the outboxes, a stored idempotent response) is erased through the API; once
`customer.erased` has flowed, no table of any service's database holds any of those strings, while
ids, amounts and counts are still there."""

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from webhook_svc.receiver import Receiver

from .conftest import ADMIN, PASSWORD, login

FIRST, LAST = "Zanzibarella", "Quixotefeld"
SECRETS = {
    FIRST,
    LAST,
    "zanzi.quix@privacy-example.com",
    "+1-555-0199-771",
    "+1-555-0199-772",
    "17 Marmaladeweg",
    "Ombrellino",
    "Prefers Quokkaphone calls",
    "tag-Vexillum",
    "PX-998877-ZQ",
    "Chief Snorkeler",
    "Marmaduke-77",
    "DE-IBAN-4455-ZQ",
    "Lobelia-Recital",
}


@pytest.fixture
async def crm(tmp_path, monkeypatch):
    # The webhook receiver runs on this machine: its network is allowed, as an operator would allow it.
    monkeypatch.setenv("CRM_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("CRM_WEBHOOK_POLL_INTERVAL", "0.1")
    settings = GatewaySettings(
        data_dir=tmp_path, admin_email=ADMIN, admin_password=PASSWORD, rate_limit_enabled=False
    )
    async with running(create_embedded_app(settings)) as client:
        yield client


@pytest.fixture
async def receiver():
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


def leftovers(data_dir: Path) -> dict[str, set[str]]:
    """{database/table.column: the secrets found there}, over every table of every SQLite file."""
    found: dict[str, set[str]] = {}
    files = sorted(data_dir.rglob("*.db")) + sorted(data_dir.rglob("*.sqlite"))
    assert len(files) >= 6, files  # every service's database and the gateway's
    for path in files:
        db = sqlite3.connect(path)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cursor = db.execute(f'SELECT * FROM "{table}"')
                columns = [d[0] for d in cursor.description]
                for row in cursor:
                    for column, value in zip(columns, row, strict=True):
                        if isinstance(value, bytes):
                            value = value.decode("utf-8", "replace")
                        if not isinstance(value, str):
                            continue
                        hits = {s for s in SECRETS if s.lower() in value.lower()}
                        if hits:
                            found.setdefault(f"{path.name}/{table}.{column}", set()).update(hits)
        finally:
            db.close()
    return found


async def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


async def created_when_known(send):
    """A context learns of a new customer from its event (or by asking customer-svc): retry a 422."""

    async def attempt():
        r = await send()
        assert r.status_code in (201, 422), r.text
        return r.status_code == 201 and r.json()

    return await eventually(attempt)


async def seed_person(crm, admin, receiver) -> dict:
    """The person, with distinctive strings in every context; answers what was created."""
    hook = await ok(
        await crm.post(
            "/api/v1/webhooks",
            json={
                "url": receiver.url,
                "eventTypes": ["customer.*", "activity.*", "ticket.*", "opportunity.*"],
            },
            headers=admin,
        ),
        201,
    )
    customer = await ok(
        await crm.post(
            "/api/v1/customers",
            json={
                "firstName": FIRST,
                "lastName": LAST,
                "email": "zanzi.quix@privacy-example.com",
                "phone": "+1-555-0199-771",
                "mobile": "+1-555-0199-772",
                "title": "Chief Snorkeler",
                "status": "CUSTOMER",
                "notes": "Prefers Quokkaphone calls",
                "tags": ["tag-Vexillum"],
                "customFields": {"passport": "PX-998877-ZQ"},
                "addresses": [{"type": "HOME", "street": "17 Marmaladeweg", "city": "Ombrellino"}],
            },
            headers={**admin, "Idempotency-Key": "create-zanzibarella"},
        ),
        201,
    )
    cid = customer["id"]
    activity = await created_when_known(
        lambda: crm.post(
            "/api/v1/activities",
            json={
                "type": "CALL",
                "subject": f"Call {FIRST} about Marmaduke-77",
                "description": f"{LAST} asked about the Lobelia-Recital",
                "customerId": cid,
                "startDate": "2030-01-01T10:00:00Z",
            },
            headers=admin,
        )
    )
    ticket = await created_when_known(
        lambda: crm.post(
            "/api/v1/tickets",
            json={
                "subject": f"Refund for {FIRST} {LAST}",
                "description": "Card ending Marmaduke-77",
                "customerId": cid,
                "type": "REQUEST",
            },
            headers=admin,
        )
    )
    await ok(
        await crm.post(
            f"/api/v1/tickets/{ticket['id']}/communications",
            json={
                "direction": "INBOUND",
                "channel": "EMAIL",
                "body": f"I am {FIRST}, my IBAN is DE-IBAN-4455-ZQ",
            },
            headers=admin,
        ),
        201,
    )
    opportunity = await created_when_known(
        lambda: crm.post(
            "/api/v1/opportunities",
            json={
                "title": f"{LAST} renewal",
                "description": f"{FIRST} budget for the Lobelia-Recital",
                "customerId": cid,
                "amount": "1250.00",
            },
            headers=admin,
        )
    )
    campaign = await ok(
        await crm.post("/api/v1/campaigns", json={"name": "Spring mailing", "type": "EMAIL"}, headers=admin),
        201,
    )

    async def targeted():
        r = await ok(
            await crm.post(
                f"/api/v1/campaigns/{campaign['id']}/targets", json={"customerIds": [cid]}, headers=admin
            )
        )
        return cid in r["added"] + r["alreadyTargets"]

    assert await eventually(targeted)

    async def delivered():
        return any(FIRST.encode() in r.body for r in receiver.received)

    assert await eventually(delivered)
    return {
        "hook": hook,
        "customer": customer,
        "activity": activity,
        "ticket": ticket,
        "opportunity": opportunity,
    }


async def test_erasure_leaves_no_personal_string_in_any_table(crm, receiver, tmp_path):
    admin = await login(crm)
    seeded = await seed_person(crm, admin, receiver)
    hook, customer, cid = seeded["hook"], seeded["customer"], seeded["customer"]["id"]
    activity, ticket, opportunity = seeded["activity"], seeded["ticket"], seeded["opportunity"]
    # Everything is in place: the secrets are spread over every service's database.
    before = leftovers(tmp_path)
    places = {key.split("/")[0] for key in before}
    assert len(places) >= 5, before

    # Only an admin erases; an unknown customer is a 404 problem.
    rep = await login(crm, *await sales_rep(crm, admin))
    r = await crm.post(f"/api/v1/customers/{cid}/erase", headers=rep)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await crm.post("/api/v1/customers/00000000-0000-4000-8000-000000000000/erase", headers=admin)
    assert r.status_code == 404, r.text

    r = await crm.post(f"/api/v1/customers/{cid}/erase", headers=admin)
    erased = await ok(r, 202)
    assert r.headers.get("CRM-Consistency-Token"), r.headers
    assert erased["id"] == cid
    assert erased["customerNumber"] == customer["customerNumber"]
    assert erased["fullName"] == "[erased]"
    assert erased["email"] == f"{cid}@erased.invalid"
    assert erased["erasedAt"] is not None and customer["erasedAt"] is None
    assert erased["phone"] is None and erased["addresses"] == [] and erased["customFields"] == {}
    # Idempotent: a second erasure answers the same record.
    again = await ok(await crm.post(f"/api/v1/customers/{cid}/erase", headers=admin), 202)
    assert again["version"] == erased["version"]

    async def scrubbed():
        return not leftovers(tmp_path)

    await eventually(scrubbed, timeout=30)
    assert leftovers(tmp_path) == {}

    # What the reports count on stays: the opportunity's amount, the ticket and activity records.
    opp = await ok(await crm.get(f"/api/v1/opportunities/{opportunity['id']}", headers=admin))
    assert opp["amount"] == "1250.00" and opp["customerId"] == cid and opp["title"] == "[erased]"
    got = await ok(await crm.get(f"/api/v1/tickets/{ticket['id']}", headers=admin))
    assert got["ticketNumber"] == ticket["ticketNumber"] and got["description"] == "[erased]"
    got = await ok(await crm.get(f"/api/v1/activities/{activity['id']}", headers=admin))
    assert got["type"] == "CALL" and got["subject"] == "[erased]"

    # Subscribers hear of the erasure, to erase on their side too.
    async def erasure_delivered():
        return any(b"crm.customer.erased" in r.body for r in receiver.received)

    assert await eventually(erasure_delivered)
    log = await ok(await crm.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=admin))
    assert [d["eventType"] for d in log["items"]] == ["customer.erased"]


async def sales_rep(crm, admin) -> tuple[str, str]:
    """A user who may write customers but is no admin."""
    email = "rep@example.com"
    user = {"email": email, "password": PASSWORD, "fullName": "Rep", "roles": ["sales_rep"]}
    await ok(await crm.post("/api/v1/users", json=user, headers=admin), 201)
    return email, PASSWORD


async def test_personal_data_export_gathers_every_context_in_one_document(crm, receiver):
    admin = await login(crm)
    seeded = await seed_person(crm, admin, receiver)
    cid = seeded["customer"]["id"]

    r = await crm.get(f"/api/v1/customers/{cid}/personal-data", headers=admin)
    doc = await ok(r)
    assert doc["customerId"] == cid
    customer = doc["customer"]
    assert (customer["firstName"], customer["email"]) == (FIRST, "zanzi.quix@privacy-example.com")
    assert customer["addresses"][0]["street"] == "17 Marmaladeweg"
    assert customer["customFields"] == {"passport": "PX-998877-ZQ"}
    assert [o["id"] for o in doc["opportunities"]] == [seeded["opportunity"]["id"]]
    assert doc["opportunities"][0]["amount"] == "1250.00"
    assert seeded["activity"]["id"] in [a["id"] for a in doc["activities"]]
    assert [t["id"] for t in doc["tickets"]] == [seeded["ticket"]["id"]]
    assert [c["body"] for c in doc["tickets"][0]["communications"]] == [
        f"I am {FIRST}, my IBAN is DE-IBAN-4455-ZQ"
    ]
    assert doc["invoices"] == []
    (membership,) = doc["campaigns"]["memberships"]
    assert membership["customerId"] == cid and membership["campaignName"] == "Spring mailing"
    assert membership["status"] == "TARGETED" and membership["addedAt"]
    assert doc["campaigns"]["interactions"] == [] and doc["campaigns"]["conversions"] == []
    # The webhook delivery log's entries about the person, with the payload sent and every attempt.
    deliveries = doc["webhookDeliveries"]
    created = next(d for d in deliveries if d["eventType"] == "customer.created")
    assert created["payload"]["data"]["fullName"] == f"{FIRST} {LAST}"
    assert created["subscriptionId"] == seeded["hook"]["id"] and created["state"] == "DELIVERED"
    assert created["attempts"][0]["statusCode"] == 200
    assert all(cid in json.dumps(d["payload"]) for d in deliveries)

    # All or nothing: a context that cannot answer makes the whole export a 503, never a partial one.
    client = crm._transport.app.state.service_client
    working = client._local["webhook"]
    client._local["webhook"] = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(503)), base_url="http://webhook"
    )
    try:
        r = await crm.get(f"/api/v1/customers/{cid}/personal-data", headers=admin)
        assert r.status_code == 503 and r.json()["code"] == "SERVICE_UNAVAILABLE", r.text
        assert "customer" not in r.json()
    finally:
        await client._local["webhook"].aclose()
        client._local["webhook"] = working

    # Only an admin exports; an unknown customer is a 404 problem.
    rep = await login(crm, *await sales_rep(crm, admin))
    r = await crm.get(f"/api/v1/customers/{cid}/personal-data", headers=rep)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN", r.text
    r = await crm.get("/api/v1/customers/00000000-0000-4000-8000-000000000000/personal-data", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "CUSTOMER_NOT_FOUND", r.text

    # After an erasure the export shows what is left: no personal string at all.
    await ok(await crm.post(f"/api/v1/customers/{cid}/erase", headers=admin), 202)

    async def export_scrubbed():
        text = (await crm.get(f"/api/v1/customers/{cid}/personal-data", headers=admin)).text
        return not any(s.lower() in text.lower() for s in SECRETS)

    assert await eventually(export_scrubbed, timeout=30)
    doc = await ok(await crm.get(f"/api/v1/customers/{cid}/personal-data", headers=admin))
    assert doc["opportunities"][0]["amount"] == "1250.00"
    assert len(doc["tickets"][0]["communications"]) == 1
    assert len(doc["campaigns"]["memberships"]) == 1
    assert {d["eventType"] for d in doc["webhookDeliveries"]} <= {"customer.erased"}


async def test_erasing_a_survivor_erases_the_duplicates_merged_into_it(crm):
    admin = await login(crm)
    person = {"firstName": FIRST, "lastName": LAST}
    primary = await ok(
        await crm.post("/api/v1/customers", json={**person, "email": "zq1@example.com"}, headers=admin), 201
    )
    duplicate = await ok(
        await crm.post(
            "/api/v1/customers",
            json={**person, "email": "zq2@example.com", "phone": "+1-555-0199-771"},
            headers=admin,
        ),
        201,
    )
    body = {"primaryCustomerId": primary["id"], "secondaryCustomerId": duplicate["id"]}
    await ok(await crm.post("/api/v1/customers/merge", json=body, headers=admin))

    # The merged-away record is erased through its survivor.
    r = await crm.post(f"/api/v1/customers/{duplicate['id']}/erase", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "CUSTOMER_MERGED", r.text
    assert r.json()["mergedIntoId"] == primary["id"]

    await ok(await crm.post(f"/api/v1/customers/{primary['id']}/erase", headers=admin), 202)
    for record in (primary, duplicate):
        got = await ok(await crm.get(f"/api/v1/customers/{record['id']}", headers=admin))
        assert got["fullName"] == "[erased]" and got["email"] == f"{record['id']}@erased.invalid", got
        assert got["phone"] is None
    # Now erased, the duplicate's own erasure answers as the idempotent repeat it is.
    await ok(await crm.post(f"/api/v1/customers/{duplicate['id']}/erase", headers=admin), 202)
