"""A customer that exists is never refused by another context: one it has not heard of yet is looked up
at customer-svc (crm_common.customer_lookup), in process in the embedded default."""

import asyncio
import uuid

import pytest
from crm_common.customer_lookup import CustomerLookup
from crm_common.testing.plugin import admitted, running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_dashboard import settings_for

SERVICES = ("customer", "pipeline", "activity", "ticket", "campaign")
REFERRING = ("pipeline", "activity", "ticket", "campaign")


@pytest.fixture
async def platform(tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=SERVICES)
    async with running(app) as client:
        yield client, app.state.services


async def new_customer(gw, h, n: int) -> str:
    r = await gw.post(
        "/api/v1/customers",
        json={
            "firstName": "Ref",
            "lastName": f"Number{n}",
            "email": f"ref{n}-{uuid.uuid4().hex[:6]}@example.com",
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def new_campaign(gw, h) -> str:
    r = await gw.post("/api/v1/campaigns", json={"name": "Spring", "type": "EMAIL"}, headers=h)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def reference(gw, h, kind: str, customer_id: str, campaign_id: str):
    """One write naming the customer in another context; the response."""
    if kind == "opportunity":
        return await gw.post(
            "/api/v1/opportunities", json={"title": "Deal", "customerId": customer_id}, headers=h
        )
    if kind == "ticket":
        body = {"subject": "Help", "description": "It broke", "customerId": customer_id, "type": "QUESTION"}
        return await gw.post("/api/v1/tickets", json=body, headers=h)
    if kind == "activity":
        body = {
            "type": "CALL",
            "subject": "Intro",
            "customerId": customer_id,
            "startDate": "2026-12-01T09:00:00Z",
        }
        return await gw.post("/api/v1/activities", json=body, headers=h)
    return await gw.post(
        f"/api/v1/campaigns/{campaign_id}/targets", json={"customerIds": [customer_id]}, headers=h
    )


def accepted(kind: str, response, customer_id: str) -> bool:
    if kind == "target":
        return response.status_code == 200 and response.json()["added"] == [customer_id]
    return response.status_code == 201 and response.json()["customerId"] == customer_id


def hold_customer_events(services) -> None:
    """customer-svc's relay stops: its events stay in its outbox, so the other contexts can only know
    a new customer by asking."""
    for task in services["customer"].state.runtime.tasks:
        task.cancel()


@pytest.mark.parametrize("held", [False, True], ids=["events-flowing", "events-held"])
async def test_a_hundred_create_then_reference_pairs_are_never_refused(platform, held):
    gw, services = platform
    h = await login(gw)
    campaign = await new_campaign(gw, h)
    if held:
        hold_customer_events(services)
    refused = []
    for n in range(100):
        customer = await new_customer(gw, h, n)
        # Activity first: other contexts' events naming the customer would tell it otherwise.
        for kind in ("activity", "opportunity", "ticket", "target"):
            r = await reference(gw, h, kind, customer, campaign)
            if not accepted(kind, r, customer):
                refused.append((n, kind, r.status_code, r.text[:200]))
    assert refused == []
    if held:  # every context learned the customers from customer-svc, not from events
        assert {s: services[s].state.customer_lookup.calls for s in REFERRING} == {s: 100 for s in REFERRING}


async def test_a_customer_that_does_not_exist_is_422_and_asked_about_once(platform):
    gw, services = platform
    h = await login(gw)
    lookup = services["pipeline"].state.customer_lookup
    ghost = str(uuid.uuid4())
    before = lookup.calls
    answers = await asyncio.gather(
        *(
            admitted(
                lambda: gw.post("/api/v1/opportunities", json={"title": "X", "customerId": ghost}, headers=h)
            )
            for _ in range(20)
        )
    )
    for r in answers:
        assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "UNKNOWN_CUSTOMER" and r.json()["errors"][0]["field"] == "customerId"
    # Concurrent lookups of one id share one call; the answer "none" is then remembered a while.
    r = await gw.post("/api/v1/opportunities", json={"title": "X", "customerId": ghost}, headers=h)
    assert r.status_code == 422
    assert lookup.calls - before == 1
    assert (await gw.get("/api/v1/opportunities", headers=h)).json()["total"] == 0


async def test_customer_service_down_is_503_and_nothing_is_written(platform):
    gw, services = platform
    h = await login(gw)
    campaign = await new_campaign(gw, h)
    hold_customer_events(services)
    customer = await new_customer(gw, h, 1)
    for name in REFERRING:  # customer-svc as a remote service nobody answers for
        services[name].state.customer_lookup = CustomerLookup.remote("http://127.0.0.1:9", token="x")
    for kind in ("opportunity", "ticket", "activity", "target"):
        r = await reference(gw, h, kind, customer, campaign)
        assert r.status_code == 503, (kind, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "CUSTOMER_SERVICE_UNAVAILABLE" and r.headers["retry-after"] == "1"
    for path in (
        "/api/v1/opportunities",
        "/api/v1/tickets",
        "/api/v1/activities",
        f"/api/v1/campaigns/{campaign}/targets",
    ):
        assert (await gw.get(path, headers=h)).json()["total"] == 0, path


async def test_the_internal_endpoint_wants_a_credential(platform):
    gw, services = platform
    h = await login(gw)
    customer = await new_customer(gw, h, 1)
    lookup = CustomerLookup.local(services["customer"], token=None)
    try:
        with pytest.raises(Exception):  # noqa: B017 - 401 is not an answer the lookup accepts
            await lookup.fetch(uuid.UUID(customer))
        found = await lookup.fetch(uuid.UUID(customer), authorization=h["Authorization"])
        assert str(found.id) == customer and found.full_name == "Ref Number1" and found.version == 1
    finally:
        await lookup.close()
    # Not routed by the gateway.
    assert (await gw.get(f"/internal/v1/customer-refs/{customer}", headers=h)).status_code == 404
