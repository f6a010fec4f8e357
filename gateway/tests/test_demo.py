"""`crm demo` loads a sample company through the public API that the views and metrics then show."""

import pytest
from crm_common.testing.plugin import running
from crm_gateway import demo
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

pytestmark = pytest.mark.xdist_group("demo")


async def test_the_demo_company_fills_every_context_and_loads_once(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN)
    async with running(create_embedded_app(settings)) as client:
        client.headers.update(await login(client))
        loaded = await demo.load_with(client, scale=0.1)

        assert loaded.counts["customers"] == 24 and loaded.counts["users"] == len(demo.USERS)
        assert {k for k in loaded.counts if k.startswith("tickets ")} == {
            f"tickets {s}" for s in ("NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED")
        }
        assert {"opportunities won", "opportunities lost", "opportunities open"} <= set(loaded.counts)
        tickets = (await client.get("/api/v1/tickets", params={"pageSize": 100})).json()
        assert {t["status"] for t in tickets["items"]} == {
            "NEW",
            "OPEN",
            "PENDING",
            "ESCALATED",
            "RESOLVED",
            "CLOSED",
        }

        # Every printed password signs its user in, with the role printed next to it.
        for email, role, password in loaded.users:
            me = await client.get("/api/v1/me", headers=await login(client, email, password))
            assert me.status_code == 200 and role in me.json()["roles"], me.text

        campaign = (await client.get("/api/v1/campaigns")).json()["items"][0]
        metrics = (await client.get(f"/api/v1/campaigns/{campaign['id']}/metrics")).json()
        assert metrics["leads"] > 0 and metrics["opened"]["count"] > 0
        dashboard = (await client.get("/api/v1/dashboard")).json()["widgets"]
        assert dashboard["salesMetrics"]["data"]["totalRevenue"], dashboard["salesMetrics"]

        with pytest.raises(demo.DemoError, match="already loaded"):
            await demo.load_with(client, scale=0.1)
        assert (await client.get("/api/v1/customers", params={"pageSize": 1})).json()["total"] == 24


def test_without_a_crm_or_a_password_the_command_says_so_in_one_line(monkeypatch):
    from crm_gateway.cli import main

    monkeypatch.delenv("CRM_ADMIN_PASSWORD", raising=False)
    with pytest.raises(SystemExit, match="give the admin's password"):
        main(["demo", "--url", "http://127.0.0.1:9"])
    with pytest.raises(SystemExit, match=r"no CRM answers at http://127\.0\.0\.1:9"):
        main(["demo", "--url", "http://127.0.0.1:9", "--admin-password", "x"])
