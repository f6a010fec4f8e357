"""Batch create, update, upsert (by externalId) and read of activities (issue 17, item 3)."""

import uuid

from activity_svc.models import Activity

from .conftest import add_user, count_rows

CALL = {"type": "CALL", "subject": "Call", "startDate": "2026-12-01T09:00:00Z"}


async def post(client, headers, path, body):
    return await client.post(f"/api/v1/activities/batch/{path}", json=body, headers=headers)


async def test_batch_create_update_upsert_and_read(client, auth_headers):
    me = await add_user(client, "Mia Owner")
    h = auth_headers(user_id=me)
    items = [
        {**CALL, "externalId": "cal-1"},
        {**CALL, "status": "CANCELLED"},  # not an initial status
        {**CALL, "externalId": "cal-1"},
    ]
    r = await post(client, h, "create", {"items": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["status"] for x in body["results"]] == [201, 422, 409]
    assert body["results"][2]["problem"]["code"] == "ACTIVITY_EXTERNAL_ID_EXISTS"
    first = body["results"][0]["data"]
    assert first["externalId"] == "cal-1" and first["ownerName"] == "Mia Owner"
    assert await count_rows(client, Activity) == 1

    r = await post(
        client,
        h,
        "update",
        {
            "items": [
                {"id": first["id"], "subject": "Call back", "version": first["version"]},
                {"id": first["id"], "subject": "stale", "version": first["version"]},
            ]
        },
    )
    assert [x["status"] for x in r.json()["results"]] == [200, 412]

    load = {"items": [{**CALL, "externalId": "cal-1", "subject": "Moved"}, {**CALL, "externalId": "cal-2"}]}
    results = (await post(client, h, "upsert", load)).json()["results"]
    assert [x["status"] for x in results] == [200, 201]
    assert results[0]["id"] == first["id"] and results[0]["data"]["subject"] == "Moved"

    r = await post(client, h, "read", {"ids": [str(uuid.uuid4()), first["id"]]})
    assert [x["status"] for x in r.json()["results"]] == [404, 200]
    assert r.json()["results"][1]["data"]["subject"] == "Moved"


async def test_batch_update_and_upsert_change_only_what_is_sent_and_refuse_null(client, auth_headers):
    me = await add_user(client, "Mia Owner")
    h = auth_headers(user_id=me)
    item = {**CALL, "externalId": "cal-9", "priority": "HIGH", "description": "Agenda"}
    (created,) = (await post(client, h, "create", {"items": [item]})).json()["results"]
    one = {"id": created["id"], "version": 1}
    for nulled in ({"subject": None}, {"priority": None}, {"status": None}):
        r = await post(client, h, "update", {"items": [{**one, **nulled}]})
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")
    r = await post(client, h, "upsert", {"items": [{**CALL, "externalId": "cal-9", "priority": None}]})
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")

    (moved,) = (
        await post(client, h, "upsert", {"items": [{**CALL, "externalId": "cal-9", "subject": "Moved"}]})
    ).json()["results"]
    assert moved["status"] == 200 and moved["data"]["version"] == 2
    assert (moved["data"]["priority"], moved["data"]["description"]) == ("HIGH", "Agenda")
    r = await post(client, h, "update", {"items": [{"id": created["id"], "version": 2, "description": None}]})
    (cleared,) = r.json()["results"]
    assert cleared["status"] == 200
    assert (cleared["data"]["description"], cleared["data"]["subject"], cleared["data"]["priority"]) == (
        None,
        "Moved",
        "HIGH",
    )
