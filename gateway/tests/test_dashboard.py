"""The dashboard, composed from customer-, pipeline- and activity-svc, and how it degrades."""

import asyncio
import time

import httpx
import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

SERVICES = ("customer", "pipeline", "activity")


def settings_for(tmp_path, **over) -> GatewaySettings:
    # A widget's budget (2 s in the product) is generous here: right after start, on CI's busiest
    # minutes, present services' widgets missed 2 s twice. The tests of the budget set their own.
    over.setdefault("dashboard_widget_timeout_seconds", 30.0)
    return GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN, **over)


@pytest.fixture
async def gateway(tmp_path):
    # The product's budget is not what these tests are about (those below set their own): CI's
    # busiest minute left a present widget without an answer within 1 s.
    app = create_embedded_app(settings_for(tmp_path), only=SERVICES)
    async with running(app) as client:
        yield client


async def seed(gw, admin):
    customer = (
        await gw.post(
            "/api/v1/customers",
            json={
                "firstName": "Grace",
                "lastName": "Hopper",
                "email": "g@navy.example",
                "status": "CUSTOMER",
            },
            headers=admin,
        )
    ).json()
    lead = await gw.post(
        "/api/v1/customers",
        json={"firstName": "Lee", "lastName": "Ad", "email": "l@example.com"},
        headers=admin,
    )
    assert lead.status_code == 201

    async def opportunity(title, amount, currency):
        r = await gw.post(
            "/api/v1/opportunities",
            json={"title": title, "customerId": customer["id"], "amount": amount, "currency": currency},
            headers=admin,
        )
        return r if r.status_code == 201 else None

    # Longer than one lookup of the customer may take (5 s, crm_common.customer_lookup): on CI's
    # busiest minutes the first lookup timed out, and the retry needs time of its own.
    assert await eventually(lambda: opportunity("Big deal", "1000.00", "USD"), timeout=15)
    assert await opportunity("Euro deal", "500.00", "EUR")
    assert await opportunity("Second", "250.50", "USD")
    return customer


async def test_the_dashboard_has_every_widget_with_per_currency_money(gateway):
    gw = gateway
    admin = await login(gw)
    await seed(gw, admin)

    async def has_feed():
        r = (await gw.get("/api/v1/dashboard", headers=admin)).json()
        return r if r["widgets"]["recentActivities"]["data"]["items"] else None

    body = await eventually(has_feed, timeout=5)
    w = body["widgets"]
    assert {k: v["status"] for k, v in w.items()} == {
        "salesMetrics": "ok",
        "pipelineFunnel": "ok",
        "recentActivities": "ok",
        "topCustomers": "ok",
    }, w
    sales = w["salesMetrics"]["data"]
    assert sales["openOpportunities"] == 3
    assert sales["totalRevenue"] == []
    assert sales["conversionRate"] == "50.0"  # one CUSTOMER of a LEAD and a CUSTOMER
    first = w["pipelineFunnel"]["data"]["stages"][0]
    assert first["count"] == 3
    totals = {t["currency"]: t for t in first["totals"]}
    assert totals["USD"]["amount"] == "1250.50" and totals["EUR"]["amount"] == "500.00"
    expected = f"{(1250.50 * first['probability'] / 100):.2f}"
    assert totals["USD"]["weightedAmount"] == expected
    items = w["recentActivities"]["data"]["items"]
    assert len(items) <= 10 and any(i.get("customerName") == "Grace Hopper" for i in items)
    # No deal won yet: nobody has a lifetime value to rank.
    assert w["topCustomers"]["data"] == {"currencies": []}


async def test_top_customers_are_ranked_per_currency(gateway):
    gw = gateway
    admin = await login(gw)
    grace = await seed(gw, admin)
    alan = (
        await gw.post(
            "/api/v1/customers",
            json={"firstName": "Alan", "lastName": "Turing", "email": "a@bletchley.example"},
            headers=admin,
        )
    ).json()

    async def won(customer, amount, currency):
        async def create():
            r = await gw.post(
                "/api/v1/opportunities",
                json={"title": "Won", "customerId": customer["id"], "amount": amount, "currency": currency},
                headers=admin,
            )
            return r if r.status_code == 201 else None

        # pipeline-svc knows a customer once customer.created reached it
        r = await eventually(create, timeout=5)
        assert r, "pipeline-svc never learnt of the customer"
        r = await gw.post(f"/api/v1/opportunities/{r.json()['id']}/win", json={}, headers=admin)
        assert r.status_code == 200, r.text

    await won(grace, "300.00", "USD")
    await won(grace, "40.00", "EUR")
    await won(alan, "90000.00", "JPY")
    await won(alan, "100.00", "USD")

    def ranking(body):
        return {
            g["currency"]: [(c["fullName"], c["lifetimeValue"]) for c in g["items"]]
            for g in body["widgets"]["topCustomers"]["data"]["currencies"]
        }

    async def all_ranked():
        body = (await gw.get("/api/v1/dashboard", headers=admin)).json()
        return body if len(ranking(body)) == 3 and len(ranking(body)["USD"]) == 2 else None

    body = await eventually(all_ranked, timeout=15)
    assert body, "the wins never reached customer-svc"
    # 90000 JPY is not "more" than 300 USD: each currency is its own ranking.
    assert ranking(body) == {
        "EUR": [("Grace Hopper", "40.00")],
        "JPY": [("Alan Turing", "90000.00")],
        "USD": [("Grace Hopper", "300.00"), ("Alan Turing", "100.00")],
    }
    usd = body["widgets"]["topCustomers"]["data"]["currencies"][2]["items"]
    assert {c["assignedToName"] for c in usd} == {"Administrator"}
    revenue = {t["currency"]: t["amount"] for t in body["widgets"]["salesMetrics"]["data"]["totalRevenue"]}
    assert revenue == {"EUR": "40.00", "JPY": "90000.00", "USD": "400.00"}


async def test_a_caller_without_sales_access_sees_those_widgets_as_forbidden(gateway):
    gw = gateway
    admin = await login(gw)
    # Every built-in role reads sales; a key that reads customers and activities only does not.
    r = await gw.post(
        "/api/v1/api-keys",
        json={"name": "no sales", "permissions": ["customers:read", "activities:read"]},
        headers=admin,
    )
    assert r.status_code == 201
    # Warm the services up first: on a loaded machine their first calls alone can take the budget.
    await gw.get("/api/v1/dashboard", headers=admin)
    body = (await gw.get("/api/v1/dashboard", headers={"Authorization": f"Bearer {r.json()['key']}"})).json()
    statuses = {k: v["status"] for k, v in body["widgets"].items()}
    assert statuses["pipelineFunnel"] == "forbidden"
    assert statuses["salesMetrics"] == "partial"
    assert body["widgets"]["salesMetrics"]["data"]["unavailable"] == ["totalRevenue", "openOpportunities"]
    assert statuses["recentActivities"] == "ok" and statuses["topCustomers"] == "ok"
    assert (await gw.get("/api/v1/dashboard")).status_code == 401


async def test_a_slow_service_is_an_unavailable_widget_within_the_budget(tmp_path):
    app = create_embedded_app(settings_for(tmp_path, dashboard_widget_timeout_seconds=0.8), only=SERVICES)
    async with running(app) as gw:
        admin = await login(gw)
        # Warm the services up first: on a loaded machine their first calls alone can take the budget.
        await gw.get("/api/v1/dashboard", headers=admin)

        async def stuck(scope, receive, send):
            await asyncio.sleep(10)

        client = app.state.service_client
        client._local["pipeline"] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=stuck), base_url="http://p"
        )
        started = time.perf_counter()
        r = await gw.get("/api/v1/dashboard", headers=admin)
        elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    statuses = {k: v["status"] for k, v in r.json()["widgets"].items()}
    assert statuses == {
        "salesMetrics": "partial",
        "pipelineFunnel": "unavailable",
        "recentActivities": "ok",
        "topCustomers": "ok",
    }
    assert "0.8" in r.json()["widgets"]["pipelineFunnel"]["reason"]
    assert elapsed < 3.0  # the stuck service would take 10 s


async def test_a_missing_service_is_an_unavailable_widget(tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=("customer",))
    async with running(app) as gw:
        body = (await gw.get("/api/v1/dashboard", headers=await login(gw))).json()
    statuses = {k: v["status"] for k, v in body["widgets"].items()}
    assert statuses == {
        "salesMetrics": "partial",
        "pipelineFunnel": "unavailable",
        "recentActivities": "unavailable",
        "topCustomers": "ok",
    }


async def test_an_answer_in_an_unknown_shape_makes_only_that_widget_unavailable(tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=SERVICES)
    async with running(app) as gw:
        admin = await login(gw)

        async def odd_feed(scope, receive, send):
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"items": [{"id": "not-an-activity"}]}'})

        app.state.service_client._local["activity"] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=odd_feed), base_url="http://a"
        )
        r = await gw.get("/api/v1/dashboard", headers=admin)
    assert r.status_code == 200, r.text
    widgets = r.json()["widgets"]
    assert widgets["recentActivities"] == {
        "status": "unavailable",
        "reason": "ValidationError",
        "data": None,
    }
    assert widgets["pipelineFunnel"]["status"] == "ok" and widgets["topCustomers"]["status"] == "ok"


async def test_leads_without_customers_are_a_zero_conversion_rate(gateway):
    gw = gateway
    admin = await login(gw)
    r = await gw.post(
        "/api/v1/customers",
        json={"firstName": "Lee", "lastName": "Ad", "email": "l@example.com"},
        headers=admin,
    )
    assert r.status_code == 201
    sales = (await gw.get("/api/v1/dashboard", headers=admin)).json()["widgets"]["salesMetrics"]
    assert sales["status"] == "ok", sales
    assert sales["data"]["conversionRate"] == "0.0"
    assert sales["data"]["conversion"] == {
        "leads": 1,
        "prospects": 0,
        "customers": 0,
        "conversionRate": "0.0",
    }
