"""Incremental sync on every list of records, through the gateway: `updatedAfter` / `createdAfter`
(RFC 3339, 422 otherwise) and cursor mode, one implementation (crm_common.pagination) everywhere."""

from datetime import UTC, datetime, timedelta

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_dashboard import settings_for

SERVICES = ("customer", "pipeline", "activity", "ticket", "campaign")


@pytest.fixture
async def world(tmp_path):
    """One record in every list, and the paths of those lists."""
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as gw:
        admin = await login(gw)

        async def post(path, body):
            r = await gw.post(f"/api/v1{path}", json=body, headers=admin)
            assert r.status_code in (200, 201), r.text
            return r.json()

        customer = await post("/customers", {"firstName": "Ada", "email": "ada@example.com"})
        opportunity = await post(
            "/opportunities", {"title": "Deal", "customerId": customer["id"], "amount": "10.00"}
        )
        activity = await post(
            "/activities",
            {
                "type": "CALL",
                "subject": "Call",
                "customerId": customer["id"],
                "startDate": "2030-01-01T10:00:00Z",
            },
        )
        ticket = await post(
            "/tickets",
            {"subject": "Help", "description": "x", "customerId": customer["id"], "type": "QUESTION"},
        )
        communication = await post(
            f"/tickets/{ticket['id']}/communications",
            {"direction": "OUTBOUND", "channel": "EMAIL", "body": "On it."},
        )
        campaign = await post("/campaigns", {"name": "Spring", "type": "EMAIL"})
        await post(f"/campaigns/{campaign['id']}/targets", {"customerIds": [customer["id"]]})
        lists = {
            "/customers": customer["id"],
            "/opportunities": opportunity["id"],
            "/activities": activity["id"],
            f"/customers/{customer['id']}/timeline": activity["id"],
            "/tickets": ticket["id"],
            f"/tickets/{ticket['id']}/communications": communication["id"],
            "/campaigns": campaign["id"],
            f"/campaigns/{campaign['id']}/targets": None,
        }
        yield gw, admin, lists


async def test_every_list_pages_by_cursor_and_filters_by_time(world):
    gw, admin, lists = world
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = "2000-01-01T00:00:00Z"
    for path, record_id in lists.items():
        r = await gw.get(f"/api/v1{path}", params={"cursor": "", "pageSize": 1}, headers=admin)
        assert r.status_code == 200, (path, r.text)
        first = r.json()
        assert len(first["items"]) == 1, path
        if record_id is not None:
            ids = {i["id"] for i in first["items"]}
            cursor = first.get("next")
            while cursor:
                r = await gw.get(f"/api/v1{path}", params={"cursor": cursor, "pageSize": 1}, headers=admin)
                assert r.status_code == 200, (path, r.text)
                ids |= {i["id"] for i in r.json()["items"]}
                cursor = r.json().get("next")
            assert record_id in ids, path
        for name in ("updatedAfter", "createdAfter"):
            r = await gw.get(f"/api/v1{path}", params={name: future}, headers=admin)
            assert r.status_code == 200 and r.json()["items"] == [], (path, name, r.text)
            r = await gw.get(f"/api/v1{path}", params={name: past}, headers=admin)
            assert r.status_code == 200 and r.json()["items"], (path, name, r.text)
            assert "next" not in r.json(), path
            r = await gw.get(f"/api/v1{path}", params={name: "last tuesday"}, headers=admin)
            assert r.status_code == 422, (path, r.text)
            assert [e["field"] for e in r.json()["errors"]] == [name], path
