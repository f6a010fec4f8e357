"""Batch create, update, upsert (by externalId) and read of tickets (issue 17, item 3)."""

import uuid

from ticket_svc.models import Ticket


async def post(client, headers, path, body):
    return await client.post(f"/api/v1/tickets/batch/{path}", json=body, headers=headers)


def ticket(customer, **fields):
    return {
        "subject": "Broken",
        "description": "It broke.",
        "type": "PROBLEM",
        "customerId": customer,
        **fields,
    }


async def test_batch_create_update_upsert_and_read(client, agent, api, add_customer):
    customer = str(await add_customer())
    items = [
        ticket(customer, externalId="zd-1"),
        ticket(str(uuid.uuid4())),
        ticket(customer, externalId="zd-1"),
    ]
    r = await post(client, agent, "create", {"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 422, 409]
    assert body["results"][2]["problem"]["code"] == "TICKET_EXTERNAL_ID_EXISTS"
    first = body["results"][0]["data"]
    assert first["externalId"] == "zd-1" and first["ticketNumber"].startswith("TKT-")
    assert await api.count(Ticket) == 1 and len(await api.events("ticket.created")) == 1

    r = await post(
        client,
        agent,
        "update",
        {
            "items": [
                {"id": first["id"], "priority": "HIGH", "version": first["version"]},
                {"id": str(uuid.uuid4()), "version": 1},
            ]
        },
    )
    assert [x["status"] for x in r.json()["results"]] == [200, 404]
    assert r.json()["results"][0]["data"]["priority"] == "HIGH"

    load = {
        "items": [
            ticket(customer, externalId="zd-1", subject="Still broken"),
            ticket(customer, externalId="zd-2"),
        ]
    }
    r = await post(client, agent, "upsert", load)
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 201]
    assert results[0]["id"] == first["id"] and results[0]["data"]["subject"] == "Still broken"

    r = await post(client, agent, "read", {"ids": [results[1]["id"], first["id"], str(uuid.uuid4())]})
    assert [x["status"] for x in r.json()["results"]] == [200, 200, 404]
    assert r.json()["results"][1]["data"]["priority"] == "HIGH"
