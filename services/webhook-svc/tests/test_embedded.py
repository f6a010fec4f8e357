"""Webhooks in the embedded default (every service and the gateway in one process, SQLite files,
the in-process bus): events caused through the public API reach a real HTTP receiver, signed per
Standard Webhooks, verified here with the `standardwebhooks` package."""

import json
import uuid

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from standardwebhooks import Webhook
from webhook_svc.receiver import Receiver

PASSWORD = "correct horse battery staple"
API = "/api/v1/webhooks"


@pytest.fixture
async def crm(tmp_path, monkeypatch):
    # The receiver runs on this machine: its network must be allowed, as an operator would allow one.
    monkeypatch.setenv("CRM_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8")
    monkeypatch.setenv("CRM_WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,0.2,0.4,0.8,1.6,3.2")
    monkeypatch.setenv("CRM_WEBHOOK_POLL_INTERVAL", "0.1")
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD)
    async with running(create_embedded_app(settings)) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"username": "admin@example.com", "password": PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


@pytest.fixture
async def receiver():
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


def bodies(secret: str, received) -> list[dict]:
    return [Webhook(secret).verify(r.body, r.headers) for r in received]


async def test_events_caused_through_the_api_reach_the_receiver(crm, receiver):
    r = await crm.post(API, json={"url": receiver.url, "eventTypes": ["customer.*", "opportunity.won"]})
    assert r.status_code == 201, r.text
    hook = r.json()

    r = await crm.post(
        "/api/v1/customers", json={"firstName": "Grace", "lastName": "Hopper", "email": "g@example.com"}
    )
    assert r.status_code == 201, r.text
    customer = r.json()

    async def opportunity_created():
        # pipeline-svc learns of the customer from its event: until then the customer is unknown there.
        r = await crm.post(
            "/api/v1/opportunities",
            json={"title": "Compiler licences", "customerId": customer["id"], "amount": "1250.00"},
        )
        assert r.status_code in (201, 422), r.text
        return r.status_code == 201 and r

    r = await eventually(opportunity_created)
    opportunity = r.json()
    r = await crm.post(f"/api/v1/opportunities/{opportunity['id']}/win", json={})
    assert r.status_code == 200, r.text

    async def arrived():
        types = [b["type"] for b in bodies(hook["secret"], receiver.received)]
        return "crm.opportunity.won" in types and "crm.customer.created" in types and types

    types = await eventually(arrived)
    # opportunity.created is not subscribed to; the customer events are (a win may update the customer).
    assert "crm.opportunity.created" not in types
    assert all(t.startswith("crm.customer.") or t == "crm.opportunity.won" for t in types)
    by_type = {b["type"]: b for b in bodies(hook["secret"], receiver.received)}
    assert by_type["crm.customer.created"]["subject"] == customer["id"]
    assert by_type["crm.customer.created"]["data"]["email"] == "g@example.com"
    assert by_type["crm.opportunity.won"]["subject"] == opportunity["id"]
    assert by_type["crm.opportunity.won"]["source"] == "/crm/pipeline"


async def test_a_receiver_down_for_a_while_gets_the_backlog_and_a_replay(crm, receiver):
    hook = (await crm.post(API, json={"url": receiver.url, "eventTypes": ["customer.created"]})).json()
    await receiver.stop()
    emails = [f"c{i}@example.com" for i in range(3)]
    for email in emails:
        r = await crm.post("/api/v1/customers", json={"firstName": "C", "lastName": email, "email": email})
        assert r.status_code == 201

    async def failing():
        log = (await crm.get(f"{API}/{hook['id']}/deliveries")).json()["items"]
        return len(log) == 3 and all(d["totalAttempts"] >= 2 for d in log) and log

    assert await eventually(failing)
    await receiver.start()
    got = await receiver.wait_for(3)
    assert sorted(b["data"]["email"] for b in bodies(hook["secret"], got)) == emails

    async def delivered():
        log = (await crm.get(f"{API}/{hook['id']}/deliveries", params={"state": "DELIVERED"})).json()["items"]
        return len(log) == 3 and log

    log = await eventually(delivered)
    r = await crm.post(f"{API}/{hook['id']}/deliveries/{log[0]['id']}/replay")
    assert r.status_code == 202
    again = (await receiver.wait_for(4))[3]
    assert json.loads(again.body)["id"] == log[0]["eventId"]
    bodies(hook["secret"], [again])


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hooks", "http://[::1]:9/hooks"]
)
async def test_ssrf_targets_are_refused_through_the_gateway(crm, url):
    r = await crm.post(API, json={"url": url, "eventTypes": ["customer.*"]})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    assert (await crm.get(API)).json()["total"] == 0


async def test_a_reps_webhook_follows_their_record_scope_and_its_redefinition(crm, receiver):
    """Through the public API: an admin lets sales reps manage webhooks; team A's rep subscribes and
    gets team A's customers only; when the role is narrowed to `own`, the gateway's `user.updated`
    carries it and a teammate's customer is withheld too."""
    from crm_common import directory
    from sqlalchemy import select
    from webhook_svc.models import UserAccess

    role = (await crm.get("/api/v1/roles/sales_rep")).json()
    scopes = {c: {"read": s["read"], "write": s["write"]} for c, s in role["scopes"].items()}
    body = {"permissions": [*role["permissions"], "webhooks:read", "webhooks:write"], "scopes": scopes}
    r = await crm.put("/api/v1/roles/sales_rep", json={**body, "version": role["version"]})
    assert r.status_code == 200, r.text
    users = {}
    for name in ("a1", "a2", "b1"):
        r = await crm.post(
            "/api/v1/users",
            json={
                "email": f"{name.replace(' ', '.')}@example.com",
                "fullName": name,
                "password": PASSWORD,
                "roles": ["sales_rep"],
            },
        )
        assert r.status_code == 201, r.text
        users[name] = r.json()["id"]
    for team, members in (("A", ["a1", "a2"]), ("B", ["b1"])):
        r = await crm.post(
            "/api/v1/teams", json={"name": team, "type": "SALES", "memberIds": [users[m] for m in members]}
        )
        assert r.status_code == 201, r.text
    r = await crm.post("/api/v1/auth/token", data={"username": "a1@example.com", "password": PASSWORD})
    rep = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await crm.post(API, json={"url": receiver.url, "eventTypes": ["customer.created"]}, headers=rep)
    assert r.status_code == 201, r.text
    hook = r.json()
    assert hook["recordScopes"]["customers"] == "team"

    async def customer(name, owner):
        r = await crm.post(
            "/api/v1/customers",
            json={
                "firstName": name,
                "lastName": "X",
                "email": f"{name.replace(' ', '.')}@example.com",
                "assignedToId": users[owner],
            },
        )
        assert r.status_code == 201, r.text

    async def log():
        # Read as the admin: the role change below signs the rep out.
        r = await crm.get(f"{API}/{hook['id']}/deliveries", params={"pageSize": 100})
        return {d["payload"]["data"]["fullName"]: d["state"] for d in (await _details(crm, hook, r))}

    # The teams reach webhook-svc from their events, as every service: wait until it knows them.
    webhook_db = crm._transport.app.state.services["webhook"].state.runtime.db

    async def teams_known():
        async with webhook_db.transaction(read_only=True) as s:
            return len((await s.execute(select(directory.teams.c.id))).all()) == 2

    assert await eventually(teams_known)
    await customer("Mate", "a2")
    await receiver.wait_for(1)
    await customer("Other", "b1")

    async def skipped_other():
        return (await log()).get("Other X") == "SKIPPED"

    assert await eventually(skipped_other)
    assert [json.loads(r.body)["data"]["fullName"] for r in receiver.received] == ["Mate X"]

    # The role narrowed to `own`: a teammate's customer is no longer a1's to read.
    role = (await crm.get("/api/v1/roles/sales_rep")).json()
    own = {c: {"read": "own", "write": "own"} for c in scopes}
    r = await crm.put("/api/v1/roles/sales_rep", json={**body, "scopes": own, "version": role["version"]})
    assert r.status_code == 200, r.text

    async def narrowed():
        async with webhook_db.transaction(read_only=True) as s:
            access = await s.scalar(select(UserAccess).where(UserAccess.user_id == uuid.UUID(users["a1"])))
            return access is not None and access.read_scopes["customers"] == "own"

    assert await eventually(narrowed)
    await customer("Mate Again", "a2")
    await customer("Mine", "a1")

    async def decided():
        states = await log()
        return states.get("Mate Again X") == "SKIPPED" and states.get("Mine X") in ("PENDING", "DELIVERED")

    assert await eventually(decided)


async def _details(crm, hook, page) -> list[dict]:
    """The deliveries of a log page with their payloads."""
    out = []
    for d in page.json()["items"]:
        r = await crm.get(f"{API}/{hook['id']}/deliveries/{d['id']}")
        out.append(r.json())
    return out
