"""A fresh install ships one SLA policy, so a new ticket has due times without any set-up; an admin
who changes or retires it keeps it that way."""

from pathlib import Path

import ticket_svc
from crm_common.migrations import downgrade, migrate

from .conftest import OFFICE_HOURS, SHIPPED_POLICY_ID

MIGRATIONS = Path(ticket_svc.__file__).parent / "migrations"
BEFORE_DEFAULTS = "744184e079cb"


async def test_a_fresh_install_gives_every_priority_due_times(fresh_install, add_customer, agent, admin):
    policies = (await fresh_install.get("/api/v1/sla-policies", headers=admin)).json()
    assert [p["name"] for p in policies["items"]] == ["Standard support (default)"]
    shipped = policies["items"][0]
    assert shipped["id"] == str(SHIPPED_POLICY_ID) and shipped["isActive"] is True
    assert shipped["timeZone"] == "UTC" and len(shipped["businessHours"]) == 7

    customer = str(await add_customer())
    expected = {
        "URGENT": ("2026-03-02T10:00:00Z", "2026-03-02T13:00:00Z"),
        "HIGH": ("2026-03-02T13:00:00Z", "2026-03-03T09:00:00Z"),
        "NORMAL": ("2026-03-02T17:00:00Z", "2026-03-04T09:00:00Z"),
        "LOW": ("2026-03-03T09:00:00Z", "2026-03-07T09:00:00Z"),
    }
    for priority, (response_due, resolution_due) in expected.items():
        r = await fresh_install.post(
            "/api/v1/tickets",
            json={
                "subject": "Help",
                "description": "Please.",
                "type": "QUESTION",
                "priority": priority,
                "customerId": customer,
            },
            headers=agent,
        )
        assert r.status_code == 201, r.text
        ticket = r.json()
        assert ticket["slaPolicyId"] == str(SHIPPED_POLICY_ID)
        assert (ticket["firstResponseDueAt"], ticket["resolutionDueAt"]) == (response_due, resolution_due)


async def test_a_retired_default_stays_retired_when_migrations_run_again(
    fresh_install, add_customer, agent, admin
):
    url = f"/api/v1/sla-policies/{SHIPPED_POLICY_ID}"
    r = await fresh_install.patch(url, json={"isActive": False, "version": 1}, headers=admin)
    assert r.status_code == 200 and r.json()["isActive"] is False, r.text

    await migrate(fresh_install.db, MIGRATIONS)  # what every restart does
    again = (await fresh_install.get(url, headers=admin)).json()
    assert again["isActive"] is False and again["version"] == 2
    listed = (await fresh_install.get("/api/v1/sla-policies", headers=admin)).json()
    assert listed["total"] == 1

    r = await fresh_install.post(
        "/api/v1/tickets",
        json={
            "subject": "Help",
            "description": "Please.",
            "type": "QUESTION",
            "customerId": str(await add_customer()),
        },
        headers=agent,
    )
    assert r.status_code == 201 and r.json()["slaPolicyId"] is None and r.json()["resolutionDueAt"] is None


async def test_an_install_that_has_policies_gets_no_default_on_upgrade(fresh_install, admin):
    await downgrade(fresh_install.db, MIGRATIONS, BEFORE_DEFAULTS)
    own = {
        "name": "Office hours",
        "timeZone": "Europe/Berlin",
        "businessHours": OFFICE_HOURS,
        "targets": [{"priority": "NORMAL", "firstResponseMinutes": 60, "resolutionMinutes": 480}],
    }
    assert (await fresh_install.post("/api/v1/sla-policies", json=own, headers=admin)).status_code == 201
    await migrate(fresh_install.db, MIGRATIONS)
    listed = (await fresh_install.get("/api/v1/sla-policies", headers=admin)).json()
    assert [p["name"] for p in listed["items"]] == ["Office hours"]
