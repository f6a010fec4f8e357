import uuid

import httpx
import pytest
from campaign_svc.models import CampaignTarget
from crm_common.testing.plugin import running

from .conftest import count_rows, create_campaign, outbox_payloads


def customer_svc_mock(customers: list[dict], *, seen: list | None = None, status: int = 200):
    """customer-svc's GET /api/v1/segments/{id}/customers, paged."""

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if status != 200:
            return httpx.Response(status, json={"code": "X"})
        page, size = int(request.url.params["page"]), int(request.url.params["pageSize"])
        items = customers[(page - 1) * size : page * size]
        return httpx.Response(
            200, json={"items": items, "total": len(customers), "page": page, "pageSize": size}
        )

    return httpx.MockTransport(handler)


async def test_targets_from_segment_pages_and_refuses_inactive(client, headers):
    c = await create_campaign(client, headers)
    people = [{"id": str(uuid.uuid4()), "fullName": f"P{n}", "status": "LEAD"} for n in range(450)]
    people[3]["status"] = "INACTIVE"
    seen: list[httpx.Request] = []
    client.app.state.customer_transport = customer_svc_mock(people, seen=seen)
    segment = uuid.uuid4()
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment", json={"segmentId": str(segment)}, headers=headers
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["added"]) == 449 and out["targetCount"] == 449
    assert out["refused"] == [
        {"customerId": people[3]["id"], "code": "CUSTOMER_INACTIVE", "message": "customer is INACTIVE"}
    ]
    assert len(seen) == 3 and seen[0].url.path == f"/api/v1/segments/{segment}/customers"
    assert seen[0].headers["Authorization"] == headers["Authorization"]  # the caller's token
    assert len(await outbox_payloads(client, "campaign.target_added")) == 449
    # again: nothing new
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment", json={"segmentId": str(segment)}, headers=headers
    )
    assert r.json()["added"] == [] and len(r.json()["alreadyTargets"]) == 449


async def test_customer_service_down_is_503_nothing_written(client, headers):
    c = await create_campaign(client, headers)

    def boom(request):
        raise httpx.ConnectError("refused", request=request)

    client.app.state.customer_transport = httpx.MockTransport(boom)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment",
        json={"segmentId": str(uuid.uuid4())},
        headers=headers,
    )
    assert r.status_code == 503 and r.json()["code"] == "CUSTOMER_SERVICE_UNAVAILABLE"
    client.app.state.customer_transport = customer_svc_mock([], status=500)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment",
        json={"segmentId": str(uuid.uuid4())},
        headers=headers,
    )
    assert r.status_code == 503
    client.app.state.customer_transport = customer_svc_mock([], status=404)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment",
        json={"segmentId": str(uuid.uuid4())},
        headers=headers,
    )
    assert r.status_code == 404 and r.json()["code"] == "SEGMENT_NOT_FOUND"
    assert await count_rows(client, CampaignTarget) == 0


@pytest.mark.parametrize("settings_extra", [{"segment_target_limit": 5}])
async def test_segment_too_large(client, headers, settings_extra):
    c = await create_campaign(client, headers)
    people = [{"id": str(uuid.uuid4()), "fullName": "P", "status": "LEAD"} for _ in range(6)]
    client.app.state.customer_transport = customer_svc_mock(people)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets/from-segment",
        json={"segmentId": str(uuid.uuid4())},
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["code"] == "SEGMENT_TOO_LARGE"
    assert await count_rows(client, CampaignTarget) == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # one dialect is enough for the HTTP call
async def test_with_real_customer_service(client, headers, auth_headers, signing_key, tmp_path, database):
    """campaign-svc -> customer-svc in process (customer-svc on its own SQLite file)."""
    from crm_common.events.memory_bus import MemoryBus
    from customer_svc.app import create_app as create_customer_app
    from customer_svc.settings import Settings as CustomerSettings

    cbus = MemoryBus()
    cdir = tmp_path / "customer"
    cdir.mkdir()
    capp = create_customer_app(CustomerSettings(jwt_public_key=signing_key[1], data_dir=cdir), bus=cbus)
    try:
        async with running(capp) as cclient:
            ids = []
            for n, status in enumerate(["LEAD", "LEAD", "PROSPECT"]):
                r = await cclient.post(
                    "/api/v1/customers",
                    json={
                        "firstName": f"C{n}",
                        "email": f"c{n}-{uuid.uuid4().hex[:6]}@x.io",
                        "status": status,
                        "source": "WEB",
                    },
                    headers=headers | auth_headers("admin"),
                )
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            r = await cclient.post(
                "/api/v1/segments",
                json={"name": "Leads", "filter": {"status": ["LEAD"]}},
                headers=auth_headers("admin"),
            )
            assert r.status_code == 201, r.text
            segment_id = r.json()["id"]
            client.app.state.customer_transport = httpx.ASGITransport(app=capp)
            c = await create_campaign(client, headers)
            r = await client.post(
                f"/api/v1/campaigns/{c['id']}/targets/from-segment",
                json={"segmentId": segment_id},
                headers=headers,
            )
            assert r.status_code == 200, r.text
            assert sorted(r.json()["added"]) == sorted(ids[:2])
    finally:
        await cbus.close()
