"""Batch create, update, upsert and read of customers (issue 17, item 3), and externalId."""

import uuid

from .conftest import count_rows, create, outbox_payloads


async def post(client, headers, path, body, **extra):
    return await client.post(f"/api/v1/customers/batch/{path}", json=body, headers={**headers, **extra})


async def test_batch_create_answers_each_item_and_keeps_the_good_ones(client, auth_headers):
    headers = auth_headers()
    await create(client, headers, email="taken@example.com")
    items = [
        {"firstName": "Ann", "email": "ann@example.com", "externalId": "crm-1"},
        {"firstName": "Dup", "email": "TAKEN@example.com"},
        {"firstName": "Bob", "email": "bob@example.com", "externalId": "crm-1"},  # same externalId
        {"companyName": "Acme", "type": "COMPANY", "email": "acme@example.com"},
    ]
    r = await post(client, headers, "create", {"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 409, 409, 201]
    assert (body["succeeded"], body["failed"]) == (2, 2)
    assert (
        body["results"][1]["problem"]["code"] == "CUSTOMER_EMAIL_EXISTS" and body["results"][1]["id"] is None
    )
    assert body["results"][2]["problem"]["code"] == "CUSTOMER_EXTERNAL_ID_EXISTS"
    ann = body["results"][0]
    assert ann["data"]["externalId"] == "crm-1" and ann["id"] == ann["data"]["id"]
    got = await client.get(f"/api/v1/customers/{ann['id']}", headers=headers)
    assert got.json()["email"] == "ann@example.com"
    # Refused items wrote nothing: 1 + 2 customers, and one customer.created per customer.
    assert await count_rows(client) == 3
    assert len(await outbox_payloads(client, "customer.created")) == 3


async def test_batch_limits_and_bad_bodies_write_nothing(client, auth_headers):
    headers = auth_headers()
    many = [{"firstName": "X", "email": f"x{i}@example.com"} for i in range(101)]
    r = await post(client, headers, "create", {"items": many})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["items"], r.text
    r = await post(client, headers, "create", {"items": []})
    assert r.status_code == 422
    r = await post(
        client,
        headers,
        "create",
        {"items": [{"firstName": "Y", "email": "y@example.com"}, {"firstName": "Z"}]},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("items.1"), r.text
    assert await count_rows(client) == 0


async def test_batch_update_refuses_a_null_for_a_field_that_cannot_be_empty(client, auth_headers):
    """As in PATCH: a field not sent stays, `null` clears an optional one, and `null` for a field
    that cannot be empty (email, status, tags...) is a 422 for the whole body, which writes nothing."""
    headers = auth_headers()
    a, b = await create(client, headers, phone="+1 555"), await create(client, headers, phone="+1 556")
    for field in ("email", "status", "priority", "type", "tags", "customFields", "addresses"):
        items = [{"id": a["id"], "phone": None}, {"id": b["id"], field: None}]
        r = await post(client, headers, "update", {"items": items})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == f"items.1.{field}", r.text
    assert await outbox_payloads(client, "customer.updated") == []
    r = await post(client, headers, "update", {"items": [{"id": a["id"], "phone": None, "version": 1}]})
    assert r.status_code == 200 and r.json()["results"][0]["data"]["phone"] is None, r.text
    after = (await client.get(f"/api/v1/customers/{b['id']}", headers=headers)).json()
    assert after == b


async def test_batch_update_with_versions_and_unknown_ids(client, auth_headers):
    headers = auth_headers()
    a, b = await create(client, headers), await create(client, headers)
    items = [
        {"id": a["id"], "notes": "new", "version": a["version"]},
        {"id": b["id"], "notes": "stale", "version": b["version"] + 5},
        {"id": str(uuid.uuid4()), "notes": "nobody"},
        {"id": b["id"], "externalId": "ext-b", "version": b["version"]},
        {"id": a["id"], "notes": "no version"},
    ]
    r = await post(client, headers, "update", {"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == [200, 412, 404, 200, 428]  # as PATCH answers each
    assert results[0]["data"]["notes"] == "new" and results[0]["data"]["version"] == a["version"] + 1
    assert results[3]["data"]["externalId"] == "ext-b" and results[3]["data"]["notes"] is None


async def test_batch_upsert_by_email_and_by_external_id(client, auth_headers):
    headers = auth_headers()
    old = await create(client, headers, email="old@example.com", firstName="Old")
    items = [
        {"firstName": "Renamed", "email": "OLD@example.com"},
        {"firstName": "Fresh", "email": "fresh@example.com"},
    ]
    r = await post(client, headers, "upsert", {"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["status"], x["data"]["firstName"]) for x in results] == [(200, "Renamed"), (201, "Fresh")]
    assert results[0]["id"] == old["id"]
    # The same load again by externalId: created first, updated the second time.
    load = {
        "idProperty": "externalId",
        "items": [{"firstName": "E", "email": "e@example.com", "externalId": "e-1"}],
    }
    first = (await post(client, headers, "upsert", load)).json()["results"][0]
    load["items"][0]["lastName"] = "Again"
    second = (await post(client, headers, "upsert", load)).json()["results"][0]
    assert (first["status"], second["status"]) == (201, 200) and first["id"] == second["id"]
    assert second["data"]["fullName"] == "E Again"
    r = await post(
        client,
        headers,
        "upsert",
        {"idProperty": "externalId", "items": [{"firstName": "N", "email": "n@example.com"}]},
    )
    assert r.json()["results"][0]["status"] == 422 and r.json()["failed"] == 1
    assert await count_rows(client) == 3


async def test_batch_read_in_order_with_404s(client, auth_headers):
    headers = auth_headers()
    a, b = await create(client, headers), await create(client, headers)
    missing = str(uuid.uuid4())
    r = await post(client, headers, "read", {"ids": [b["id"], missing, a["id"]]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["status"], x["id"]) for x in results] == [(200, b["id"]), (404, None), (200, a["id"])]
    assert results[1]["problem"]["code"] == "CUSTOMER_NOT_FOUND"
    assert results[2]["data"]["email"] == a["email"]


async def test_batch_with_an_idempotency_key_replays(client, auth_headers):
    headers = auth_headers()
    body = {"items": [{"firstName": "Once", "email": "once@example.com"}]}
    first = await post(client, headers, "create", body, **{"Idempotency-Key": "load-1"})
    again = await post(client, headers, "create", body, **{"Idempotency-Key": "load-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json() and await count_rows(client) == 1
