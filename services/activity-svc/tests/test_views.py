"""Timelines, the caller's agenda (time-zone edges included) and the recent-activities feed."""

import uuid

import pytest
from crm_common.testing import plugin as shared

from .conftest import add_user, deliver

BASE = "/api/v1/activities"


async def create(client, headers, **fields):
    body = {"type": "TASK", "subject": "Task", **fields}
    r = await client.post(BASE, json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


# --- timelines --------------------------------------------------------------------------------------


async def test_a_customer_timeline_mixes_activities_and_notes_newest_first_and_pages(client, auth_headers):
    cid = uuid.uuid4()
    ev = shared.customer_created_event(
        cid,
        name="Ada Lovelace",
        number="CUST-2026-000001",
        type="INDIVIDUAL",
        status="LEAD",
        email="ada@example.com",
    )
    await deliver(client, ev.model_copy(update={"time": ev.time.replace(year=2026, month=11, day=20)}))
    h = auth_headers()
    early = await create(
        client, h, type="CALL", subject="Intro", customerId=str(cid), startDate="2026-11-10T09:00:00Z"
    )
    late = await create(
        client, h, type="MEETING", subject="Demo", customerId=str(cid), startDate="2026-11-25T09:00:00Z"
    )
    await create(
        client, h, subject="Other customer", customerId=str(uuid.uuid4()), startDate="2026-11-26T09:00:00Z"
    )

    url = f"/api/v1/customers/{cid}/timeline"
    page = (await client.get(url, headers=h)).json()
    assert [i["subject"] for i in page["items"]] == ["Demo", "Customer created", "Intro"]
    assert page["total"] == 3 and page["items"][1]["system"] is True
    assert all(i["customerName"] == "Ada Lovelace" for i in page["items"])
    second = (await client.get(url, params={"pageSize": 2, "page": 2}, headers=h)).json()
    assert [i["id"] for i in second["items"]] == [early["id"]]
    only_people = (await client.get(url, params={"system": "false"}, headers=h)).json()
    assert [i["id"] for i in only_people["items"]] == [late["id"], early["id"]]
    only_calls = (await client.get(url, params={"type": "CALL"}, headers=h)).json()
    assert [i["id"] for i in only_calls["items"]] == [early["id"]]
    oldest_first = (await client.get(url, params={"sort": "startDate"}, headers=h)).json()
    assert oldest_first["items"][0]["id"] == early["id"]
    nothing = (await client.get(f"/api/v1/customers/{uuid.uuid4()}/timeline", headers=h)).json()
    assert nothing == {"items": [], "total": 0, "page": 1, "pageSize": 25}


async def test_opportunity_and_ticket_timelines_hold_their_own_activities(client, auth_headers):
    h = auth_headers()
    opp, tck = uuid.uuid4(), uuid.uuid4()
    a = await create(client, h, opportunityId=str(opp), startDate="2026-11-10T09:00:00Z")
    b = await create(client, h, ticketId=str(tck), startDate="2026-11-11T09:00:00Z")
    got = (await client.get(f"/api/v1/opportunities/{opp}/timeline", headers=h)).json()
    assert [i["id"] for i in got["items"]] == [a["id"]]
    got = (await client.get(f"/api/v1/tickets/{tck}/timeline", headers=h)).json()
    assert [i["id"] for i in got["items"]] == [b["id"]]
    bad = await client.get("/api/v1/tickets/not-a-uuid/timeline", headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "VALIDATION_ERROR"
    bad = await client.get(f"/api/v1/tickets/{tck}/timeline", params={"sort": "bogus"}, headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "INVALID_SORT"


# --- agenda -----------------------------------------------------------------------------------------

AT = "2026-11-25T10:30:00Z"  # Auckland (UTC+13): 25 Nov 23:30; Los Angeles (UTC-8): 25 Nov 02:30


async def agenda(client, headers, **params):
    r = await client.get(f"{BASE}/agenda", params={"at": AT, **params}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return body, {k: [i["subject"] for i in body[k]["items"]] for k in ("overdue", "dueToday", "upcoming")}


@pytest.fixture
async def my_week(client, auth_headers):
    me = uuid.uuid4()
    h = auth_headers("sales_rep", user_id=me)
    for subject, start, extra in [
        ("long overdue", "2026-11-20T09:00:00Z", {}),
        ("07:00Z", "2026-11-25T07:00:00Z", {}),  # LA: 24 Nov 23:00; Auckland: 25 Nov 20:00
        ("09:00Z", "2026-11-25T09:00:00Z", {}),  # LA: 25 Nov 01:00; Auckland: 25 Nov 22:00
        ("11:30Z", "2026-11-25T11:30:00Z", {"type": "MEETING"}),  # Auckland: 26 Nov 00:30
        ("all day 26th", "2026-11-26T00:00:00Z", {"isAllDay": True}),  # LA clock: 25 Nov 16:00
        ("in a week", "2026-12-01T12:00:00Z", {}),  # Auckland: 2 Dec 01:00, still within 7 days
        ("too far", "2026-12-20T12:00:00Z", {}),
        ("a call", "2026-11-25T09:30:00Z", {"type": "CALL"}),  # not a task or meeting
    ]:
        await create(client, h, subject=subject, startDate=start, **extra)
    done = await create(client, h, subject="done", startDate="2026-11-25T09:00:00Z")
    await client.post(f"{BASE}/{done['id']}/complete", headers=h)
    cancelled = await create(client, h, subject="cancelled", startDate="2026-11-25T09:00:00Z")
    await client.post(f"{BASE}/{cancelled['id']}/cancel", headers=h)
    await create(client, auth_headers(), subject="someone else's", startDate="2026-11-25T09:00:00Z")
    return me, h


async def test_the_agenda_in_utc(client, my_week):
    _, h = my_week
    body, got = await agenda(client, h, timeZone="UTC")
    assert body["today"] == "2026-11-25" and body["timeZone"] == "UTC"
    assert got == {
        "overdue": ["long overdue"],
        "dueToday": ["07:00Z", "09:00Z", "11:30Z"],
        "upcoming": ["all day 26th", "in a week"],
    }
    assert (body["overdue"]["total"], body["dueToday"]["total"], body["upcoming"]["total"]) == (1, 3, 2)


async def test_the_agenda_in_auckland_moves_the_midnight_boundary(client, my_week):
    _, h = my_week
    body, got = await agenda(client, h, timeZone="Pacific/Auckland")
    assert body["today"] == "2026-11-25"
    assert got == {
        "overdue": ["long overdue"],
        "dueToday": ["07:00Z", "09:00Z"],
        "upcoming": ["11:30Z", "all day 26th", "in a week"],
    }


async def test_the_agenda_in_los_angeles_keeps_all_day_items_on_their_date(client, my_week):
    _, h = my_week
    body, got = await agenda(client, h, timeZone="America/Los_Angeles")
    assert body["today"] == "2026-11-25"
    assert got == {
        "overdue": ["long overdue", "07:00Z"],
        "dueToday": ["09:00Z", "11:30Z"],
        "upcoming": ["all day 26th", "in a week"],
    }


async def test_the_agenda_limits_items_but_counts_all_and_takes_types(client, my_week):
    _, h = my_week
    body, got = await agenda(client, h, timeZone="UTC", limit=1, type=["CALL"], days=1)
    assert got["dueToday"] == ["a call"] and body["dueToday"]["total"] == 1
    body, got = await agenda(client, h, timeZone="UTC", limit=1)
    assert got["dueToday"] == ["07:00Z"] and body["dueToday"]["total"] == 3


async def test_the_agenda_uses_the_callers_directory_zone_by_default(client, my_week, auth_headers):
    me, h = my_week
    await add_user(client, "Me", user_id=me, time_zone="Pacific/Auckland")
    body, got = await agenda(client, h)
    assert body["timeZone"] == "Pacific/Auckland" and "11:30Z" in got["upcoming"]


async def test_a_participant_sees_the_meeting_in_their_agenda(client, auth_headers):
    guest = await add_user(client, "Guest")
    await create(
        client,
        auth_headers(),
        type="MEETING",
        subject="Board",
        startDate="2026-11-25T15:00:00Z",
        participantIds=[str(guest)],
    )
    _, got = await agenda(client, auth_headers(user_id=guest), timeZone="UTC")
    assert got["dueToday"] == ["Board"]


async def test_a_short_dst_day_ends_at_local_midnight(client, auth_headers):
    # Paris springs forward on 29 March 2026: that day has 23 hours and ends at 22:00Z.
    me = uuid.uuid4()
    h = auth_headers(user_id=me)
    await create(client, h, subject="late on the 29th", startDate="2026-03-29T21:30:00Z")
    await create(client, h, subject="early on the 30th", startDate="2026-03-29T22:30:00Z")
    r = await client.get(
        f"{BASE}/agenda",
        params={"at": "2026-03-29T08:00:00Z", "timeZone": "Europe/Paris", "days": 1},
        headers=h,
    )
    body = r.json()
    assert [i["subject"] for i in body["dueToday"]["items"]] == ["late on the 29th"]
    assert [i["subject"] for i in body["upcoming"]["items"]] == ["early on the 30th"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"timeZone": "Mars/Olympus"}, "INVALID_TIME_ZONE"),
        ({"timeZone": "../../etc/passwd"}, "INVALID_TIME_ZONE"),
        ({"days": 0}, "VALIDATION_ERROR"),
        ({"at": "2026-11-25T10:30:00"}, "VALIDATION_ERROR"),
        ({"type": "PARTY"}, "VALIDATION_ERROR"),
    ],
)
async def test_bad_agenda_parameters_are_422(client, auth_headers, params, code):
    r = await client.get(f"{BASE}/agenda", params=params, headers=auth_headers())
    assert r.status_code == 422 and r.json()["code"] == code


# --- feed -------------------------------------------------------------------------------------------


async def test_the_feed_shows_the_latest_with_names_and_groups_by_local_date(client, auth_headers):
    owner = await add_user(client, "Olive Owner")
    cid = uuid.uuid4()
    created = shared.customer_created_event(
        cid,
        name="Globex",
        number="CUST-2026-000003",
        status="LEAD",
        email="info@globex.example",
        created_by=owner,
    )
    await deliver(client, created)
    h = auth_headers(user_id=owner)
    first = await create(
        client, h, type="CALL", subject="Call Globex", customerId=str(cid), startDate="2026-11-25T09:00:00Z"
    )
    second = await create(
        client, h, subject="Send quote", customerId=str(cid), startDate="2026-12-01T09:00:00Z"
    )

    r = await client.get(f"{BASE}/feed", params={"limit": 2}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["id"] for i in body["items"]] == [second["id"], first["id"]]  # newest created first
    assert {(i["customerName"], i["ownerName"]) for i in body["items"]} == {("Globex", "Olive Owner")}
    assert body["groups"] == []

    grouped = (
        await client.get(f"{BASE}/feed", params={"groupByDate": "true", "timeZone": "Asia/Tokyo"}, headers=h)
    ).json()
    assert grouped["timeZone"] == "Asia/Tokyo"
    assert sum(len(g["items"]) for g in grouped["groups"]) == 3
    assert grouped["groups"][-1]["items"][-1]["subject"] == "Customer created"

    people_only = (await client.get(f"{BASE}/feed", params={"includeSystem": "false"}, headers=h)).json()
    assert len(people_only["items"]) == 2
    older = (
        await client.get(f"{BASE}/feed", params={"before": second["createdAt"], "type": "CALL"}, headers=h)
    ).json()
    assert [i["id"] for i in older["items"]] == [first["id"]]
    bad = await client.get(f"{BASE}/feed", params={"limit": 101}, headers=h)
    assert bad.status_code == 422
