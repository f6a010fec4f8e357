"""The admin endpoints over dead letters and outboxes (crm_common.events.admin_api), through the
gateway of the embedded default: what `crm events dlq|outbox` does, where there is no shell."""

import uuid

import sqlalchemy as sa
from activity_svc.service import notes as notes_service
from crm_common.events.dead_letters import PermanentEventError
from crm_common.events.tables import outbox
from crm_common.testing.plugin import eventually

from . import test_dead_letters as embedded
from .conftest import PASSWORD, login

data_dir, crm = embedded.data_dir, embedded.crm
EVENTS = "/api/v1/admin/events"


async def sales_rep(client) -> dict[str, str]:
    r = await client.post(
        "/api/v1/users",
        json={"email": "rep@example.com", "fullName": "Rep", "password": PASSWORD, "roles": ["sales_rep"]},
    )
    assert r.status_code == 201, r.text
    return await login(client, "rep@example.com")


def problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == code and body["status"] == status, body
    return body


async def test_only_admins_reach_dead_letters_and_outboxes(crm):
    rep = await sales_rep(crm)
    calls = [
        ("GET", f"{EVENTS}/activity/dead-letters", None),
        ("GET", f"{EVENTS}/activity/dead-letters/1", None),
        ("POST", f"{EVENTS}/activity/dead-letters/1/replay", None),
        ("DELETE", f"{EVENTS}/activity/dead-letters/1", None),
        ("GET", f"{EVENTS}/customer/outbox", None),
        ("GET", f"{EVENTS}/customer/outbox/{uuid.uuid4()}", None),
        ("POST", f"{EVENTS}/customer/outbox/replay", {"since": "2026-01-01T00:00:00Z"}),
        ("GET", f"{EVENTS}/gateway/outbox", None),
    ]
    for method, url, body in calls:
        r = await crm.request(method, url, json=body, headers=rep)
        assert "`admin`" in problem(r, 403, "FORBIDDEN")["detail"], (method, url)
        r = await crm.request(method, url, json=body, headers={"Authorization": ""})
        problem(r, 401, "UNAUTHORIZED")


async def test_an_admin_lists_shows_replays_and_discards_dead_letters(crm, monkeypatch):
    real = notes_service.record_system_note

    async def refuses(*args, **kwargs):
        raise PermanentEventError("notes are refused today")

    monkeypatch.setattr(notes_service, "record_system_note", refuses)
    ids = await embedded.create_customers(crm, 2)

    async def two():
        r = await crm.get(f"{EVENTS}/activity/dead-letters")
        # Both written: the count and the page are separate reads, so wait for the page to hold both.
        return r.json() if len(r.json()["items"]) == 2 else None

    page = await eventually(two, timeout=20)
    assert page["page"] == 1 and page["pageSize"] == 25
    first, second = page["items"]
    assert first["eventType"] == "crm.customer.created" and first["consumer"] == "activity"
    assert first["summary"] == "PermanentEventError: notes are refused today"
    assert first["attempts"] == 1 and first["applied"] is False

    r = await crm.get(f"{EVENTS}/activity/dead-letters/{first['id']}")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["payload"]["data"]["customerId"] in ids and "Traceback" in detail["error"]

    # Still broken: the replay fails, the dead letter stays with one more attempt.
    r = await crm.post(f"{EVENTS}/activity/dead-letters/{first['id']}/replay")
    assert "notes are refused today" in problem(r, 409, "REPLAY_FAILED")["detail"]
    r = await crm.get(f"{EVENTS}/activity/dead-letters/{first['id']}")
    assert r.json()["attempts"] == 2

    monkeypatch.setattr(notes_service, "record_system_note", real)
    r = await crm.post(f"{EVENTS}/activity/dead-letters/{first['id']}/replay")
    assert r.status_code == 200, r.text
    assert r.json() == {"id": first["id"], "eventType": "crm.customer.created", "result": "applied"}
    notes = await embedded.created_notes(crm)
    assert notes == {detail["payload"]["data"]["customerId"]: 1}

    r = await crm.delete(f"{EVENTS}/activity/dead-letters/{second['id']}")
    assert r.status_code == 204, r.text
    assert (await crm.get(f"{EVENTS}/activity/dead-letters")).json()["items"] == []
    problem(await crm.delete(f"{EVENTS}/activity/dead-letters/{second['id']}"), 404, "DEAD_LETTER_NOT_FOUND")
    problem(
        await crm.post(f"{EVENTS}/activity/dead-letters/{first['id']}/replay"), 404, "DEAD_LETTER_NOT_FOUND"
    )
    # The gateway consumes no events; a name no service has is not a path at all.
    problem(await crm.get(f"{EVENTS}/gateway/dead-letters"), 404, "NOT_FOUND")
    problem(await crm.get(f"{EVENTS}/nobody/dead-letters"), 422, "VALIDATION_ERROR")
    assert await embedded.created_notes(crm) == notes


async def test_an_admin_lists_and_replays_outbox_rows(crm):
    (customer_id,) = await embedded.create_customers(crm, 1)

    async def published():
        r = await crm.get(f"{EVENTS}/customer/outbox", params={"state": "PUBLISHED"})
        return r.json() if r.json()["total"] == 1 else None

    page = await eventually(published, timeout=20)
    (row,) = page["items"]
    assert row["type"] == "crm.customer.created" and row["state"] == "PUBLISHED" and row["ageSeconds"] >= 0
    # By default only what needs an eye: nothing here.
    assert (await crm.get(f"{EVENTS}/customer/outbox")).json()["total"] == 0
    r = await crm.get(f"{EVENTS}/customer/outbox/{row['eventId']}")
    assert r.status_code == 200 and r.json()["payload"]["data"]["customerId"] == customer_id
    problem(await crm.get(f"{EVENTS}/customer/outbox/{uuid.uuid4()}"), 404, "OUTBOX_ROW_NOT_FOUND")

    r = await crm.post(f"{EVENTS}/customer/outbox/replay", json={"eventIds": [row["eventId"]]})
    assert r.status_code == 200 and r.json() == {"replayed": 1}, r.text
    # Published again; activity-svc had it (its inbox), so there is still one note.
    await eventually(published, timeout=20)
    assert await embedded.created_notes(crm) == {customer_id: 1}
    async with embedded.runtime(crm, "customer").db.transaction(read_only=True) as s:
        states = (await s.execute(sa.select(outbox.c.state))).scalars().all()
    assert states == ["PUBLISHED"]

    for body in (
        {},
        {"eventIds": [row["eventId"]], "since": "2026-01-01T00:00:00Z"},
        {"until": "2026-01-01T00:00:00Z"},
    ):
        problem(await crm.post(f"{EVENTS}/customer/outbox/replay", json=body), 422, "VALIDATION_ERROR")
    r = await crm.post(
        f"{EVENTS}/customer/outbox/replay", json={"since": "2000-01-01T00:00:00Z", "type": "nothing.here"}
    )
    assert r.json() == {"replayed": 0}

    # The gateway's own outbox (user and team events) is there too.
    r = await crm.get(f"{EVENTS}/gateway/outbox", params={"state": ["PUBLISHED", "PENDING"]})
    assert r.status_code == 200, r.text


async def test_the_merged_openapi_documents_them_once(crm):
    doc = (await crm.get("/openapi.json")).json()
    item = doc["paths"][f"{EVENTS}/{{service}}/dead-letters/{{letter_id}}/replay"]
    assert item["post"]["operationId"] == "dead_letters_replay"
    assert {"401", "403", "404", "409", "422"} <= set(item["post"]["responses"])
    assert item["post"]["responses"]["409"]["content"].keys() == {"application/problem+json"}
    ops = {
        op["operationId"]
        for path, it in doc["paths"].items()
        if path.startswith(EVENTS)
        for op in it.values()
    }
    assert ops == {
        "dead_letters_list",
        "dead_letters_get",
        "dead_letters_replay",
        "dead_letters_discard",
        "outbox_list",
        "outbox_get",
        "outbox_replay",
    }
