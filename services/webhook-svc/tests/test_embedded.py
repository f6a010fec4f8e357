"""Webhooks in the embedded default (every service and the gateway in one process, SQLite files,
the in-process bus): events caused through the public API reach a real HTTP receiver, signed per
Standard Webhooks, verified here with the `standardwebhooks` package."""

import json

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
