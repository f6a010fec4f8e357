"""SLA policies: validation, revisions, which policy a ticket runs on, due times in business time."""

import uuid

import pytest
from ticket_svc.models import SlaPolicy, SlaRevision

HOURS = [{"day": d, "start": "09:00", "end": "17:00"} for d in ("MON", "TUE", "WED", "THU", "FRI")]
TARGETS = [{"priority": "NORMAL", "firstResponseMinutes": 60, "resolutionMinutes": 480}]


def policy(**fields) -> dict:
    return {"name": "P", "timeZone": "UTC", "businessHours": HOURS, "targets": TARGETS, **fields}


async def test_create_read_and_list(client, api, admin, agent):
    r = await client.post(
        "/api/v1/sla-policies",
        json=policy(
            name="Berlin office",
            timeZone="Europe/Berlin",
            holidays=["2026-12-25", "2026-12-24", "2026-12-25"],
            businessHours=[*HOURS, {"day": "SAT", "start": "10:00", "end": "12:00"}],
        ),
        headers=admin,
    )
    assert r.status_code == 201, r.text
    p = r.json()
    assert p["holidays"] == ["2026-12-24", "2026-12-25"]
    assert p["pauseStatuses"] == ["PENDING"] and p["isActive"] is True
    assert p["targets"] == TARGETS and p["version"] == 1 and r.headers["etag"] == 'W/"1"'
    got = await client.get(f"/api/v1/sla-policies/{p['id']}", headers=agent)
    assert got.status_code == 200 and got.json() == p
    page = (await client.get("/api/v1/sla-policies", headers=agent)).json()
    assert page["total"] == 1 and page["items"][0]["id"] == p["id"]
    # Writing policies is for admins.
    r = await client.post("/api/v1/sla-policies", json=policy(), headers=agent)
    assert r.status_code == 403
    assert await api.count(SlaRevision) == 1


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        (
            {"businessHours": [{"day": "MON", "start": "17:00", "end": "09:00"}]},
            "INVALID_BUSINESS_HOURS",
            "businessHours.0",
        ),
        (
            {"businessHours": [{"day": "MON", "start": "09:00", "end": "09:00"}]},
            "INVALID_BUSINESS_HOURS",
            "businessHours.0",
        ),
        (
            {"businessHours": [{"day": "MON", "start": "25:00", "end": "26:00"}]},
            "INVALID_BUSINESS_HOURS",
            "businessHours.0.start",
        ),
        (
            {"businessHours": [{"day": "MON", "start": "09:00", "end": "24:30"}]},
            "INVALID_BUSINESS_HOURS",
            "businessHours.0.end",
        ),
        (
            {"businessHours": [{"day": "MON", "start": "24:00", "end": "24:00"}]},
            "INVALID_BUSINESS_HOURS",
            "businessHours.0.start",
        ),
        (
            {
                "businessHours": [
                    {"day": "MON", "start": "09:00", "end": "17:00"},
                    {"day": "TUE", "start": "09:00", "end": "17:00"},
                    {"day": "MON", "start": "12:00", "end": "13:00"},
                ]
            },
            "INVALID_BUSINESS_HOURS",
            "businessHours.2",
        ),
        ({"businessHours": []}, "VALIDATION_ERROR", "businessHours"),
        (
            {"businessHours": [{"day": "MONDAY", "start": "09:00", "end": "17:00"}]},
            "VALIDATION_ERROR",
            "businessHours.0.day",
        ),
        (
            {"businessHours": [{"day": "MON", "start": "9:00", "end": "17:00"}]},
            "VALIDATION_ERROR",
            "businessHours.0.start",
        ),
        ({"timeZone": "Mars/Olympus_Mons"}, "INVALID_TIME_ZONE", "timeZone"),
        ({"holidays": ["2026-02-30"]}, "VALIDATION_ERROR", "holidays.0"),
        ({"targets": []}, "VALIDATION_ERROR", "targets"),
        ({"targets": [*TARGETS, *TARGETS]}, "INVALID_SLA_TARGETS", "targets.1.priority"),
        (
            {"targets": [{"priority": "LOW", "firstResponseMinutes": 600, "resolutionMinutes": 60}]},
            "INVALID_SLA_TARGETS",
            "targets.0.resolutionMinutes",
        ),
        (
            {"targets": [{"priority": "LOW", "firstResponseMinutes": 0, "resolutionMinutes": 60}]},
            "VALIDATION_ERROR",
            "targets.0.firstResponseMinutes",
        ),
        (
            {"targets": [{"priority": "SEVERE", "firstResponseMinutes": 1, "resolutionMinutes": 60}]},
            "VALIDATION_ERROR",
            "targets.0.priority",
        ),
        ({"pauseStatuses": ["RESOLVED"]}, "VALIDATION_ERROR", "pauseStatuses.0"),
        ({"customerPriority": "VIP"}, "VALIDATION_ERROR", "customerPriority"),
    ],
)
async def test_impossible_policies_are_4xx_and_write_nothing(client, api, admin, change, code, field):
    r = await client.post("/api/v1/sla-policies", json=policy(**change), headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code
    assert field in {e["field"] for e in r.json()["errors"]}
    assert await api.count(SlaPolicy) == 0 and await api.count(SlaRevision) == 0


async def test_every_error_of_a_policy_is_reported_at_once(client, api, admin):
    bad = policy(
        timeZone="Mars/Olympus_Mons",
        businessHours=[
            {"day": "MON", "start": "17:00", "end": "09:00"},
            {"day": "TUE", "start": "09:00", "end": "17:00"},
            {"day": "TUE", "start": "12:00", "end": "13:00"},
        ],
        targets=[{"priority": "LOW", "firstResponseMinutes": 600, "resolutionMinutes": 60}],
    )
    r = await client.post("/api/v1/sla-policies", json=bad, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "INVALID_TIME_ZONE"
    assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [
        ("timeZone", "invalid_time_zone"),
        ("businessHours.0", "end_before_start"),
        ("businessHours.2", "overlap"),
        ("targets.0.resolutionMinutes", "resolution_before_response"),
    ]
    assert await api.count(SlaPolicy) == 0


async def test_due_times_follow_the_calendar(api, new_ticket, new_policy, clock):
    await new_policy(
        timeZone="Europe/Berlin",
        holidays=["2026-03-30"],
        businessHours=[
            {"day": d, "start": "09:00", "end": "17:00"} for d in ("MON", "TUE", "WED", "THU", "FRI")
        ],
    )
    clock.set(2026, 3, 27, 15)  # Friday 16:00 CET
    ticket = await new_ticket(priority="HIGH")  # 60 / 960 business minutes
    # 60 minutes on Friday 16-17 CET; Monday 30 March is a holiday.
    assert ticket["firstResponseDueAt"] == "2026-03-27T16:00:00Z"
    # 960 = 60 Friday + 480 Tuesday + 420 Wednesday -> Wednesday 16:00 CEST (14:00Z).
    assert ticket["resolutionDueAt"] == "2026-04-01T14:00:00Z"
    assert ticket["slaPolicyId"] is not None


async def test_the_most_specific_active_policy_applies(
    api, new_ticket, new_policy, add_team, add_customer, bus, clock
):
    team = await add_team()
    general = await new_policy(name="General")
    for_team = await new_policy(name="Team", teamId=str(team), targets=TARGETS)  # NORMAL only
    only_low = await new_policy(
        name="Low only",
        teamId=str(team),
        targets=[{"priority": "LOW", "firstResponseMinutes": 5, "resolutionMinutes": 10}],
    )
    vip = await new_policy(name="Critical customers", customerPriority="CRITICAL")
    await new_policy(name="Inactive", teamId=str(team), customerPriority="CRITICAL", isActive=False)

    assert (await new_ticket())["slaPolicyId"] == general["id"]
    assert (await new_ticket(teamId=str(team)))["slaPolicyId"] == for_team["id"]
    assert (await new_ticket(teamId=str(team), priority="LOW"))["slaPolicyId"] == only_low["id"]
    critical = await add_customer("Big Co", priority="CRITICAL")
    assert (await new_ticket(customerId=str(critical)))["slaPolicyId"] == vip["id"]
    assert (await new_ticket(customerId=str(critical), teamId=str(team)))["slaPolicyId"] == for_team["id"]


async def test_no_matching_policy_means_no_due_times(new_ticket, new_policy):
    await new_policy(targets=[{"priority": "URGENT", "firstResponseMinutes": 5, "resolutionMinutes": 10}])
    ticket = await new_ticket(priority="LOW")
    assert ticket["slaPolicyId"] is None and ticket["resolutionDueAt"] is None


async def test_changing_a_policy_applies_to_new_tickets_only(
    client, api, admin, new_ticket, new_policy, clock
):
    p = await new_policy(targets=TARGETS)
    old = await new_ticket()
    assert old["firstResponseDueAt"] == "2026-03-02T10:00:00Z"
    url = f"/api/v1/sla-policies/{p['id']}"
    r = await client.patch(url, json={"name": "Renamed"}, headers=admin)
    assert (r.status_code, r.json()["code"]) == (428, "PRECONDITION_REQUIRED")
    r = await client.patch(url, json={"name": "Renamed"}, headers={**admin, "If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.json()["revisionId"] == p["revisionId"]  # terms unchanged
    slower = [{"priority": "NORMAL", "firstResponseMinutes": 120, "resolutionMinutes": 480}]
    r = await client.patch(url, json={"targets": slower, "version": 2}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3 and r.json()["revisionId"] != p["revisionId"]
    assert await api.count(SlaRevision) == 2
    new = await new_ticket()
    assert new["firstResponseDueAt"] == "2026-03-02T11:00:00Z"
    # The old ticket keeps its terms, even when its priority changes and back.
    for priority, version in (("HIGH", 1), ("NORMAL", 2)):
        r = await client.patch(
            f"/api/v1/tickets/{old['id']}", json={"priority": priority, "version": version}, headers=admin
        )
        assert r.status_code == 200, r.text
    assert r.json()["firstResponseDueAt"] == "2026-03-02T10:00:00Z"
    stale = await client.patch(url, json={"name": "x", "version": 1}, headers=admin)
    assert stale.status_code == 412
    bad = await client.patch(
        url,
        json={"businessHours": [{"day": "MON", "start": "10:00", "end": "09:00"}], "version": 3},
        headers=admin,
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_BUSINESS_HOURS")
    assert (await client.get(url, headers=admin)).json()["version"] == 3


async def test_a_priority_change_takes_the_new_priority_targets(client, agent, new_ticket, new_policy, clock):
    await new_policy()  # NORMAL 240 / HIGH 60 first response
    ticket = await new_ticket()
    clock.advance(minutes=30)
    r = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"priority": "HIGH", "version": 1}, headers=agent
    )
    assert r.status_code == 200
    assert r.json()["firstResponseDueAt"] == "2026-03-02T10:00:00Z"  # 60 minutes from creation
    clock.advance(minutes=45)
    r = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"priority": "URGENT", "version": 2}, headers=agent
    )
    # 75 minutes used, 30 allowed: overdue since 09:30.
    assert r.json()["firstResponseDueAt"] == "2026-03-02T09:30:00Z"
    assert r.json()["responseBreached"] is True


async def test_unknown_policy_is_404(client, admin):
    r = await client.get(f"/api/v1/sla-policies/{uuid.uuid4()}", headers=admin)
    assert (r.status_code, r.json()["code"]) == (404, "SLA_POLICY_NOT_FOUND")


async def test_policy_patch_tells_a_field_not_sent_from_null(client, admin, new_policy):
    """Not sent: the field keeps its value. null: the scope and description are cleared; a field
    every policy has is a 422 that changes nothing."""
    policy = await new_policy(description="Office hours", customerPriority="HIGH")
    url = f"/api/v1/sla-policies/{policy['id']}"
    fields = ("name", "isActive", "targets", "timeZone", "businessHours", "holidays", "pauseStatuses")
    for field in fields:
        r = await client.patch(url, json={field: None, "version": 1}, headers=admin)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
    assert (await client.get(url, headers=admin)).json() == policy

    r = await client.patch(
        url, json={"description": None, "customerPriority": None, "version": 1}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert (r.json()["description"], r.json()["customerPriority"]) == (None, None)
    assert {k: r.json()[k] for k in fields} == {k: policy[k] for k in fields}
