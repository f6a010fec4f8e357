"""Batch create, update, upsert (by externalId) and read of opportunities (issue 17, item 3)."""

import uuid

from crm_common.testing.plugin import count_rows, outbox_payloads
from pipeline_svc.models import Opportunity


async def post(client, headers, path, body):
    return await client.post(f"/api/v1/opportunities/batch/{path}", json=body, headers=headers)


async def test_batch_create_update_upsert_and_read(client, auth_headers, new_customer):
    h = auth_headers()
    customer = str(await new_customer())
    items = [
        {"title": "A", "customerId": customer, "externalId": "erp-1", "amount": "10.00"},
        {"title": "B", "customerId": str(uuid.uuid4())},  # unknown customer
        {"title": "C", "customerId": customer, "externalId": "erp-1"},  # externalId taken
    ]
    r = await post(client, h, "create", {"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 422, 409]
    assert body["results"][1]["problem"]["code"] == "UNKNOWN_CUSTOMER"
    assert body["results"][2]["problem"]["code"] == "OPPORTUNITY_EXTERNAL_ID_EXISTS"
    a = body["results"][0]["data"]
    assert a["externalId"] == "erp-1" and (body["succeeded"], body["failed"]) == (1, 2)
    assert (
        await count_rows(client, Opportunity) == 1
        and len(await outbox_payloads(client, "opportunity.created")) == 1
    )

    r = await post(
        client,
        h,
        "update",
        {
            "items": [
                {"id": a["id"], "title": "A2", "version": a["version"]},
                {"id": a["id"], "title": "stale", "version": 1},
            ]
        },
    )
    assert [x["status"] for x in r.json()["results"]] == [200, 412]
    assert r.json()["results"][0]["data"]["title"] == "A2"

    load = {
        "items": [
            {"title": "A3", "customerId": customer, "externalId": "erp-1"},
            {"title": "D", "customerId": customer, "externalId": "erp-2"},
            {"title": "E", "customerId": customer},
        ]
    }
    r = await post(client, h, "upsert", load)
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 201, 422]
    assert results[0]["id"] == a["id"] and results[0]["data"]["title"] == "A3"
    assert results[2]["problem"]["errors"][0]["field"] == "externalId"

    r = await post(client, h, "read", {"ids": [results[1]["id"], str(uuid.uuid4()), a["id"]]})
    assert [(x["status"], x["id"]) for x in r.json()["results"]] == [
        (200, results[1]["id"]),
        (404, None),
        (200, a["id"]),
    ]
    r = await post(client, h, "read", {"ids": [str(uuid.uuid4()) for _ in range(101)]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ids"
