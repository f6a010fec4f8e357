"""Metrics against hand-computed values."""

import pytest

STATUSES = ("NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED")


@pytest.fixture
async def scenario(client, api, new_ticket, new_policy, add_team, clock):
    """Five tickets opened Monday 09:00 under office hours 09-17 UTC (targets: NORMAL 240/2400,
    HIGH 60/960, URGENT 30/240, LOW 480/4800), then worked through the day:

        ticket  team  priority  first response      resolved            rating
        t1      A     NORMAL    10:00 (60)          11:00 (120)         5
        t2      A     HIGH      10:30 (90, late)    13:00 (240)         3
        t3      B     URGENT    09:20 (20)          open; resolution due 13:00: overdue at 14:00
        t4      -     LOW       none (due 17:00)    new
        t5      B     NORMAL    09:10 (10)          09:40 (40), closed  5
    """
    await new_policy()
    team_a, team_b = await add_team("Team A"), await add_team("Team B")
    t1 = await new_ticket(priority="NORMAL", teamId=str(team_a))
    t2 = await new_ticket(priority="HIGH", teamId=str(team_a))
    t3 = await new_ticket(priority="URGENT", teamId=str(team_b))
    t4 = await new_ticket(priority="LOW")
    t5 = await new_ticket(priority="NORMAL", teamId=str(team_b))
    clock.set(2026, 3, 2, 9, 10)
    await api.communicate(t5, "OUTBOUND", "EMAIL")
    clock.set(2026, 3, 2, 9, 20)
    await api.communicate(t3, "OUTBOUND", "EMAIL")
    clock.set(2026, 3, 2, 9, 40)
    await api.status(t5, "RESOLVED", resolution="Done")
    await api.status(t5, "CLOSED")
    clock.set(2026, 3, 2, 10, 0)
    await api.communicate(t1, "OUTBOUND", "EMAIL")
    clock.set(2026, 3, 2, 10, 30)
    await api.communicate(t2, "OUTBOUND", "EMAIL")
    clock.set(2026, 3, 2, 11, 0)
    await api.status(t1, "RESOLVED", resolution="Done")
    clock.set(2026, 3, 2, 13, 0)
    await api.status(t2, "RESOLVED", resolution="Done")
    for ticket, rating in ((t1, 5), (t2, 3), (t5, 5)):
        r = await client.post(
            f"/api/v1/tickets/{ticket['id']}/satisfaction", json={"rating": rating}, headers=api.headers
        )
        assert r.status_code == 200, r.text
    clock.set(2026, 3, 2, 14, 0)
    return {"team_a": str(team_a), "team_b": str(team_b), "tickets": (t1, t2, t3, t4, t5)}


async def metrics(client, headers, **params) -> dict:
    r = await client.get("/api/v1/tickets/metrics", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def by_status(**counts) -> dict:
    return {s: counts.get(s, 0) for s in STATUSES}


async def test_overall_metrics(client, api, scenario):
    report = await metrics(client, api.headers)
    assert report["generatedAt"] == "2026-03-02T14:00:00Z" and report["groups"] == []
    m = report["overall"]
    assert m["total"] == 5
    assert m["byStatus"] == by_status(NEW=1, OPEN=1, RESOLVED=2, CLOSED=1)
    assert m["byPriority"] == {"LOW": 1, "NORMAL": 2, "HIGH": 1, "URGENT": 1}
    assert m["sla"] == {
        "withSla": 5,
        "breached": 2,  # t2 answered late, t3 overdue now
        "responseBreached": 1,
        "resolutionBreached": 1,
        "breachRate": 0.4,
    }
    assert m["firstResponse"] == {"count": 4, "averageMinutes": 45.0, "p90Minutes": 90}
    assert m["resolution"] == {"count": 3, "averageMinutes": 133.33, "p90Minutes": 240}
    assert m["satisfaction"] == {
        "count": 3,
        "average": 4.33,
        "distribution": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 2},
    }


async def test_metrics_by_team(client, api, scenario):
    report = await metrics(client, api.headers, groupBy="team")
    groups = {g["key"]: g for g in report["groups"]}
    assert set(groups) == {scenario["team_a"], scenario["team_b"], None}
    a, b, none = groups[scenario["team_a"]], groups[scenario["team_b"]], groups[None]
    assert a["teamName"] == "Team A" and b["teamName"] == "Team B" and none["teamName"] is None
    assert a["total"] == 2 and a["byStatus"] == by_status(RESOLVED=2)
    assert a["firstResponse"] == {"count": 2, "averageMinutes": 75.0, "p90Minutes": 90}
    assert a["resolution"] == {"count": 2, "averageMinutes": 180.0, "p90Minutes": 240}
    assert a["sla"]["breached"] == 1 and a["sla"]["breachRate"] == 0.5
    assert a["satisfaction"]["average"] == 4.0
    assert b["firstResponse"] == {"count": 2, "averageMinutes": 15.0, "p90Minutes": 20}
    assert b["resolution"] == {"count": 1, "averageMinutes": 40.0, "p90Minutes": 40}
    assert b["sla"]["resolutionBreached"] == 1 and b["sla"]["breachRate"] == 0.5
    assert b["satisfaction"] == {
        "count": 1,
        "average": 5.0,
        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1},
    }
    assert none["total"] == 1 and none["byPriority"]["LOW"] == 1
    assert none["firstResponse"] == {"count": 0, "averageMinutes": None, "p90Minutes": None}
    assert none["sla"]["breachRate"] == 0.0
    # A team filter gives that team's figures overall.
    only_a = await metrics(client, api.headers, teamId=scenario["team_a"])
    assert only_a["overall"] == {k: v for k, v in a.items() if k not in ("key", "teamName")}


async def test_metrics_by_period_and_filtered_by_period(client, api, scenario, new_ticket, clock):
    clock.set(2026, 3, 10, 10, 0)  # the next Tuesday: one more ticket
    await new_ticket(priority="LOW")
    by_day = await metrics(client, api.headers, groupBy="day")
    assert [(g["key"], g["total"]) for g in by_day["groups"]] == [("2026-03-02", 5), ("2026-03-10", 1)]
    # By now t4's first response (due Monday 17:00) is overdue too.
    assert by_day["overall"]["sla"]["breached"] == 3
    by_week = await metrics(client, api.headers, groupBy="week")
    assert [(g["key"], g["total"]) for g in by_week["groups"]] == [("2026-03-02", 5), ("2026-03-09", 1)]
    by_month = await metrics(client, api.headers, groupBy="month")
    assert [(g["key"], g["total"]) for g in by_month["groups"]] == [("2026-03", 6)]
    later = await metrics(client, api.headers, **{"from": "2026-03-03T00:00:00Z"})
    assert later["overall"]["total"] == 1 and later["createdFrom"] == "2026-03-03T00:00:00Z"
    earlier = await metrics(client, api.headers, to="2026-03-03T00:00:00Z")
    assert earlier["overall"]["total"] == 5


async def test_metrics_of_nothing_and_bad_parameters(client, agent, auth_headers):
    m = (await metrics(client, agent))["overall"]
    assert m["total"] == 0 and m["sla"]["breachRate"] is None and m["firstResponse"]["averageMinutes"] is None
    r = await client.get("/api/v1/tickets/metrics", params={"groupBy": "year"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")
    r = await client.get("/api/v1/tickets/metrics", params={"from": "yesterday"}, headers=agent)
    assert r.status_code == 422
    r = await client.get("/api/v1/tickets/metrics", headers=auth_headers("marketer"))
    assert r.status_code == 403


async def test_breached_filter_matches_the_metrics(client, api, scenario):
    t1, t2, t3, t4, t5 = scenario["tickets"]
    r = await client.get(
        "/api/v1/tickets", params={"breached": "true", "sort": "ticketNumber"}, headers=api.headers
    )
    assert [t["id"] for t in r.json()["items"]] == [t2["id"], t3["id"]]
    r = await client.get("/api/v1/tickets", params={"breached": "false"}, headers=api.headers)
    assert {t["id"] for t in r.json()["items"]} == {t1["id"], t4["id"], t5["id"]}
