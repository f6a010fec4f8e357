"""The activity API as a client sees it: create, read, update, transitions, completion, delete,
lists; every bad path answers a problem and writes nothing. Runs on SQLite and Postgres."""

import uuid

import pytest

from .conftest import add_user, count_rows, counts, outbox_payloads

BASE = "/api/v1/activities"
CALL = {
    "type": "CALL",
    "subject": "Discovery call",
    "startDate": "2026-12-01T09:00:00Z",
    "endDate": "2026-12-01T09:45:00+00:00",
}


def problem(r, status, code):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code, body
    return body


async def create(client, headers, **fields):
    r = await client.post(BASE, json={**CALL, **fields}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


# --- create -----------------------------------------------------------------------------------------


async def test_create_fills_defaults_derives_duration_and_names_people(client, auth_headers):
    me = await add_user(client, "Mia Owner")
    guest = await add_user(client, "Gus Guest")
    customer = uuid.uuid4()
    r = await client.post(
        BASE,
        json={**CALL, "customerId": str(customer), "participantIds": [str(guest)], "customFields": {"x": 1}},
        headers=auth_headers("sales_rep", user_id=me),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["duration"] == 45
    assert body["status"] == "PLANNED" and body["priority"] == "NORMAL"
    assert body["ownerId"] == str(me) and body["ownerName"] == "Mia Owner"
    assert body["participants"] == [{"userId": str(guest), "name": "Gus Guest"}]
    assert body["customerId"] == str(customer)
    assert body["system"] is False and body["sourceEventId"] is None
    assert body["isAllDay"] is False and body["attachments"] == [] and body["customFields"] == {"x": 1}
    assert body["version"] == 1 and r.headers["etag"] == 'W/"1"'
    assert r.headers["location"] == f"{BASE}/{body['id']}"
    got = await client.get(r.headers["location"], headers=auth_headers("read_only"))
    assert got.status_code == 200 and got.json() == body and got.headers["etag"] == 'W/"1"'


async def test_a_duration_without_an_end_gives_the_end(client, auth_headers):
    body = await create(client, auth_headers(), endDate=None, duration=90)
    assert body["endDate"].startswith("2026-12-01T10:30:00")
    assert body["duration"] == 90


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"type": "PARTY"}, 422, "VALIDATION_ERROR", "type"),
        ({"status": "DONE"}, 422, "VALIDATION_ERROR", "status"),
        ({"priority": "MEGA"}, 422, "VALIDATION_ERROR", "priority"),
        ({"subject": "  "}, 422, "VALIDATION_ERROR", "subject"),
        ({"startDate": "2026-12-01T09:00:00"}, 422, "VALIDATION_ERROR", "startDate"),  # no zone
        ({"endDate": "2026-12-01T08:59:00Z"}, 422, "END_BEFORE_START", "endDate"),
        ({"duration": 30}, 422, "DURATION_MISMATCH", "duration"),
        ({"duration": -5, "endDate": None}, 422, "VALIDATION_ERROR", "duration"),
        ({"status": "CANCELLED"}, 422, "INVALID_INITIAL_STATUS", "status"),
        ({"participantIds": [str(uuid.UUID(int=7))]}, 422, "UNKNOWN_USER", "participantIds.0"),
        ({"ownerId": str(uuid.UUID(int=8))}, 422, "UNKNOWN_USER", "ownerId"),
        ({"colour": "red"}, 422, "VALIDATION_ERROR", "colour"),
        ({"system": True}, 422, "VALIDATION_ERROR", "system"),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(client, auth_headers, change, status, code, field):
    r = await client.post(BASE, json={**CALL, **change}, headers=auth_headers())
    body = problem(r, status, code)
    assert field in [e["field"] for e in body["errors"]]
    assert await counts(client) == (0, 0, 0)


async def test_an_inactive_participant_is_refused_and_each_unknown_one_is_named(client, auth_headers):
    known = await add_user(client, "Kim")
    gone = await add_user(client, "Gone")
    await add_user(client, "Gone", user_id=gone, active=False, version=2)
    stranger = uuid.uuid4()
    r = await client.post(
        BASE, json={**CALL, "participantIds": [str(known), str(gone), str(stranger)]}, headers=auth_headers()
    )
    body = problem(r, 422, "UNKNOWN_USER")
    assert [e["field"] for e in body["errors"]] == ["participantIds.1", "participantIds.2"]
    assert await counts(client) == (0, 0, 0)


async def test_creating_a_completed_activity_logs_it_and_publishes_completion(client, auth_headers):
    me = uuid.uuid4()
    body = await create(
        client,
        auth_headers(user_id=me),
        status="COMPLETED",
        outcome="Interested",
        followUpDate="2026-12-08T09:00:00Z",
        nextSteps="Send the quote",
    )
    assert body["status"] == "COMPLETED" and body["completedAt"] is not None
    (event,) = await outbox_payloads(client)
    assert event["type"] == "crm.activity.completed"
    assert event["data"]["activityId"] == body["id"] and event["data"]["outcome"] == "Interested"
    follow = await client.get(BASE, params={"followUpOfId": body["id"]}, headers=auth_headers())
    (task,) = follow.json()["items"]
    assert task["type"] == "TASK" and task["subject"] == "Follow up: Discovery call"
    assert task["description"] == "Send the quote" and task["ownerId"] == str(me)


# --- read, update ------------------------------------------------------------------------------------


async def test_unknown_activity_is_404(client, auth_headers):
    r = await client.get(f"{BASE}/{uuid.uuid4()}", headers=auth_headers())
    problem(r, 404, "ACTIVITY_NOT_FOUND")
    r = await client.patch(
        f"{BASE}/{uuid.uuid4()}", json={"subject": "x", "version": 1}, headers=auth_headers()
    )
    problem(r, 404, "ACTIVITY_NOT_FOUND")


async def test_update_needs_the_version_and_refuses_a_stale_one(client, auth_headers):
    a = await create(client, auth_headers())
    url = f"{BASE}/{a['id']}"
    problem(
        await client.patch(url, json={"subject": "New"}, headers=auth_headers()), 428, "PRECONDITION_REQUIRED"
    )
    ok = await client.patch(url, json={"subject": "New"}, headers={**auth_headers(), "If-Match": 'W/"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["subject"] == "New" and ok.json()["version"] == 2 and ok.headers["etag"] == 'W/"2"'
    stale = await client.patch(url, json={"subject": "Newer", "version": 1}, headers=auth_headers())
    assert problem(stale, 412, "VERSION_CONFLICT")["currentVersion"] == 2
    assert (await client.get(url, headers=auth_headers())).json()["subject"] == "New"


async def test_update_reschedules_keeping_the_duration_and_validates_dates(client, auth_headers):
    a = await create(client, auth_headers())
    url = f"{BASE}/{a['id']}"
    moved = await client.patch(
        url, json={"startDate": "2026-12-02T14:00:00Z", "version": 1}, headers=auth_headers()
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["endDate"].startswith("2026-12-02T14:45:00") and moved.json()["duration"] == 45
    longer = await client.patch(url, json={"duration": 60, "version": 2}, headers=auth_headers())
    assert longer.json()["endDate"].startswith("2026-12-02T15:00:00")
    cleared = await client.patch(url, json={"endDate": None, "version": 3}, headers=auth_headers())
    assert cleared.json()["endDate"] is None and cleared.json()["duration"] is None
    bad = await client.patch(
        url, json={"endDate": "2026-12-02T13:00:00Z", "version": 4}, headers=auth_headers()
    )
    problem(bad, 422, "END_BEFORE_START")
    for nulled in ({"subject": None}, {"type": None}, {"startDate": None}, {"participantIds": None}):
        problem(
            await client.patch(url, json={**nulled, "version": 4}, headers=auth_headers()),
            422,
            "VALIDATION_ERROR",
        )
    after = (await client.get(url, headers=auth_headers())).json()
    assert after["version"] == 4 and after["endDate"] is None


async def test_a_patch_changes_only_what_is_sent_and_refuses_null_for_a_required_field(client, auth_headers):
    a = await create(
        client, auth_headers(), description="Agenda", priority="HIGH", links=["https://x.example"]
    )
    url = f"{BASE}/{a['id']}"
    for field in ("isAllDay", "status", "priority", "ownerId", "attachments", "links", "customFields"):
        refused = await client.patch(url, json={field: None, "version": 1}, headers=auth_headers())
        problem(refused, 422, "VALIDATION_ERROR")
    renamed = await client.patch(url, json={"subject": "Renamed", "version": 1}, headers=auth_headers())
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["description"], renamed.json()["priority"]) == ("Agenda", "HIGH")
    assert renamed.json()["links"] == ["https://x.example"] and renamed.json()["version"] == 2
    cleared = await client.patch(url, json={"description": None, "version": 2}, headers=auth_headers())
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["description"], cleared.json()["subject"]) == (None, "Renamed")


async def test_update_replaces_participants_and_checks_them(client, auth_headers):
    a_user, b_user = await add_user(client, "A"), await add_user(client, "B")
    a = await create(client, auth_headers(), participantIds=[str(a_user)])
    url = f"{BASE}/{a['id']}"
    r = await client.patch(
        url, json={"participantIds": [str(b_user), str(b_user)], "version": 1}, headers=auth_headers()
    )
    assert [p["name"] for p in r.json()["participants"]] == ["B"]
    bad = await client.patch(
        url, json={"participantIds": [str(uuid.uuid4())], "version": 2}, headers=auth_headers()
    )
    problem(bad, 422, "UNKNOWN_USER")
    assert [p["name"] for p in (await client.get(url, headers=auth_headers())).json()["participants"]] == [
        "B"
    ]


# --- transitions and completion ---------------------------------------------------------------------


async def test_the_happy_path_planned_in_progress_completed(client, auth_headers):
    a = await create(client, auth_headers(), customerId=str(uuid.uuid4()))
    url = f"{BASE}/{a['id']}"
    started = await client.post(f"{url}/start", headers=auth_headers())
    assert started.status_code == 200 and started.json()["status"] == "IN_PROGRESS"
    done = await client.post(
        f"{url}/complete",
        json={
            "outcome": "Agreed on a demo",
            "nextSteps": "Book the demo",
            "followUpDate": "2026-12-05T10:00:00Z",
        },
        headers={**auth_headers(), "If-Match": started.headers["etag"]},
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["activity"]["status"] == "COMPLETED" and body["activity"]["outcome"] == "Agreed on a demo"
    assert body["activity"]["nextSteps"] == "Book the demo" and body["activity"]["completedAt"]
    task = body["followUp"]
    assert task["type"] == "TASK" and task["status"] == "PLANNED"
    assert task["startDate"].startswith("2026-12-05T10:00:00") and task["followUpOfId"] == a["id"]
    assert task["customerId"] == a["customerId"] and task["ownerId"] == a["ownerId"]
    (event,) = await outbox_payloads(client)
    assert event["type"] == "crm.activity.completed" and event["subject"] == a["id"]
    assert event["sequence"] == body["activity"]["version"]
    assert event["data"]["customerId"] == a["customerId"] and event["data"]["type"] == "CALL"


async def test_completing_without_a_follow_up_date_creates_no_task(client, auth_headers):
    a = await create(client, auth_headers())
    done = await client.post(f"{BASE}/{a['id']}/complete", headers=auth_headers())
    assert done.status_code == 200 and done.json()["followUp"] is None
    assert await count_rows(client) == 1


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("complete", "start"),
        ("complete", "complete"),
        ("complete", "cancel"),
        ("cancel", "start"),
        ("cancel", "complete"),
        ("cancel", "cancel"),
    ],
)
async def test_final_states_stay_final(client, auth_headers, first, then):
    a = await create(client, auth_headers())
    assert (await client.post(f"{BASE}/{a['id']}/{first}", headers=auth_headers())).status_code == 200
    before = await counts(client)
    r = await client.post(f"{BASE}/{a['id']}/{then}", json=None, headers=auth_headers())
    body = problem(r, 409, "INVALID_STATUS_TRANSITION")
    assert body["allowed"] == []
    assert await counts(client) == before


async def test_in_progress_cannot_go_back_to_planned(client, auth_headers):
    a = await create(client, auth_headers(), status="IN_PROGRESS")
    problem(
        await client.post(f"{BASE}/{a['id']}/start", headers=auth_headers()), 409, "INVALID_STATUS_TRANSITION"
    )
    r = await client.patch(
        f"{BASE}/{a['id']}", json={"status": "PLANNED", "subject": "x", "version": 1}, headers=auth_headers()
    )
    problem(r, 409, "INVALID_STATUS_TRANSITION")
    assert (await client.get(f"{BASE}/{a['id']}", headers=auth_headers())).json()[
        "subject"
    ] == "Discovery call"


async def test_completing_through_patch_is_the_same_as_the_action(client, auth_headers):
    a = await create(client, auth_headers(), followUpDate="2026-12-09T08:00:00Z")
    r = await client.patch(
        f"{BASE}/{a['id']}", json={"status": "COMPLETED", "version": 1}, headers=auth_headers()
    )
    assert r.status_code == 200 and r.json()["status"] == "COMPLETED"
    assert [e["type"] for e in await outbox_payloads(client)] == ["crm.activity.completed"]
    tasks = (await client.get(BASE, params={"followUpOfId": a["id"]}, headers=auth_headers())).json()
    assert tasks["total"] == 1


async def test_cancel_keeps_the_reason_and_a_stale_if_match_is_refused(client, auth_headers):
    a = await create(client, auth_headers())
    url = f"{BASE}/{a['id']}"
    problem(
        await client.post(
            f"{url}/cancel", json={"reason": "x"}, headers={**auth_headers(), "If-Match": 'W/"9"'}
        ),
        412,
        "VERSION_CONFLICT",
    )
    r = await client.post(f"{url}/cancel", json={"reason": "Customer postponed"}, headers=auth_headers())
    assert r.json()["status"] == "CANCELLED" and r.json()["outcome"] == "Customer postponed"
    problem(
        await client.post(f"{url}/complete", json={"bogus": 1}, headers=auth_headers()),
        422,
        "VALIDATION_ERROR",
    )


# --- delete ------------------------------------------------------------------------------------------


async def test_delete_removes_the_activity_and_its_participants(client, auth_headers):
    guest = await add_user(client, "G")
    a = await create(client, auth_headers(), participantIds=[str(guest)])
    url = f"{BASE}/{a['id']}"
    problem(
        await client.delete(url, headers={**auth_headers(), "If-Match": 'W/"5"'}), 412, "VERSION_CONFLICT"
    )
    assert (await client.delete(url, headers=auth_headers())).status_code == 204
    problem(await client.get(url, headers=auth_headers()), 404, "ACTIVITY_NOT_FOUND")
    assert await counts(client) == (0, 0, 0)
    problem(await client.delete(url, headers=auth_headers()), 404, "ACTIVITY_NOT_FOUND")


# --- lists -------------------------------------------------------------------------------------------


async def test_list_filters_sorts_and_pages(client, auth_headers):
    me, other, guest = uuid.uuid4(), await add_user(client, "Olga"), await add_user(client, "Gil")
    cust = uuid.uuid4()
    h = auth_headers(user_id=me)
    call = await create(client, h, customerId=str(cust))
    meeting = await create(
        client,
        h,
        type="MEETING",
        startDate="2026-12-03T09:00:00Z",
        endDate=None,
        priority="HIGH",
        participantIds=[str(guest)],
    )
    task = await create(
        client, h, type="TASK", startDate="2026-12-05T09:00:00Z", endDate=None, ownerId=str(other)
    )
    await client.post(f"{BASE}/{task['id']}/complete", headers=h)

    async def ids(**params):
        r = await client.get(BASE, params=params, headers=h)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert await ids() == [task["id"], meeting["id"], call["id"]]  # newest start first
    assert await ids(sort="startDate") == [call["id"], meeting["id"], task["id"]]
    assert await ids(customerId=str(cust)) == [call["id"]]
    assert await ids(ownerId=str(other)) == [task["id"]]
    assert await ids(participantId=str(guest)) == [meeting["id"]]
    assert await ids(type=["MEETING", "TASK"]) == [task["id"], meeting["id"]]
    assert await ids(status="COMPLETED") == [task["id"]]
    assert await ids(priority="HIGH") == [meeting["id"]]
    assert await ids(system="false") == [task["id"], meeting["id"], call["id"]]
    assert await ids(startFrom="2026-12-02T00:00:00Z", startTo="2026-12-05T09:00:00Z") == [meeting["id"]]
    page = (await client.get(BASE, params={"pageSize": 2, "page": 2}, headers=h)).json()
    assert page["total"] == 3 and page["page"] == 2 and page["pageSize"] == 2 and len(page["items"]) == 1


@pytest.mark.parametrize(
    "params",
    [
        {"type": "PARTY"},
        {"status": "DONE"},
        {"sort": "colour"},
        {"pageSize": 201},
        {"startFrom": "2026-12-01T00:00:00"},  # no time zone
        {"customerId": "nope"},
    ],
)
async def test_bad_list_parameters_are_422(client, auth_headers, params):
    r = await client.get(BASE, params=params, headers=auth_headers())
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"


async def test_every_operation_needs_activity_access(client, auth_headers):
    some = f"{BASE}/{uuid.uuid4()}"
    calls = [
        ("POST", BASE, CALL),
        ("GET", BASE, None),
        ("GET", some, None),
        ("PATCH", some, {"subject": "x"}),
        ("DELETE", some, None),
        ("POST", f"{some}/complete", None),
        ("GET", f"{BASE}/agenda", None),
        ("GET", f"{BASE}/feed", None),
        ("GET", f"/api/v1/customers/{uuid.uuid4()}/timeline", None),
    ]
    for method, url, body in calls:
        assert (await client.request(method, url, json=body)).status_code == 401, url
        r = await client.request(method, url, json=body, headers=auth_headers("nobody"))
        assert r.status_code == 403, url


async def test_a_retried_create_with_an_idempotency_key_happens_once(client, auth_headers):
    me = uuid.uuid4()
    h = {**auth_headers(user_id=me), "Idempotency-Key": "create-call-1"}
    first = await client.post(BASE, json=CALL, headers=h)
    again = await client.post(BASE, json=CALL, headers=h)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await count_rows(client) == 1
    other = await client.post(BASE, json={**CALL, "subject": "Another"}, headers=h)
    problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert await count_rows(client) == 1


async def test_a_page_past_the_end_still_counts(client, auth_headers):
    for _ in range(3):
        await create(client, auth_headers())
    page = (await client.get(BASE, params={"page": 5, "pageSize": 2}, headers=auth_headers())).json()
    assert page == {"items": [], "total": 3, "page": 5, "pageSize": 2}
