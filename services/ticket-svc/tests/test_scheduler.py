"""The breach-escalation scheduler: once per breach, pauses respected, safe with two instances."""

import asyncio
from datetime import UTC, datetime, timedelta

from crm_common.db import Database
from crm_common.testing.plugin import eventually, running
from ticket_svc.app import create_app
from ticket_svc.models import SlaBreach
from ticket_svc.worker.scheduler import escalate_breaches

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the tests' clock starts on this Monday


def at(**delta):
    return START + timedelta(**delta)


async def test_each_breach_is_escalated_once(client, api, new_ticket, new_policy):
    await new_policy()
    ticket = await new_ticket(priority="URGENT")  # 30 / 240 business minutes
    assert await escalate_breaches(client.db, now=at(minutes=29)) == []
    done = await escalate_breaches(client.db, now=at(minutes=31))
    assert [(str(d.ticket_id), d.kind, d.escalation_level) for d in done] == [
        (ticket["id"], "FIRST_RESPONSE", 1)
    ]
    t = await api.get(ticket)
    assert t["status"] == "ESCALATED" and t["escalationLevel"] == 1 and t["responseBreached"] is True
    (event,) = await api.events("ticket.escalated")
    assert event["data"]["automatic"] is True and event["data"]["escalatedBy"] is None
    assert event["data"]["reason"] == "First response SLA breached (due 2026-03-02T09:30:00Z)"
    assert event["data"]["escalationLevel"] == 1 and event["sequence"] == t["version"]
    assert [e["data"]["fromStatus"] for e in await api.events("ticket.status_changed")] == ["NEW"]

    assert await escalate_breaches(client.db, now=at(hours=2)) == []  # the same breach: nothing more
    done = await escalate_breaches(client.db, now=at(hours=4, minutes=1))  # resolution due 13:00
    assert [(d.kind, d.escalation_level) for d in done] == [("RESOLUTION", 2)]
    assert await escalate_breaches(client.db, now=at(days=3)) == []
    t = await api.get(ticket)
    assert t["escalationLevel"] == 2 and t["resolutionBreached"] is True
    assert len(await api.events("ticket.escalated")) == 2
    assert await api.count(SlaBreach) == 2


async def test_answered_paused_and_resolved_tickets_are_left_alone(
    client, api, new_ticket, new_policy, clock
):
    await new_policy()
    answered = await new_ticket(priority="URGENT")
    paused = await new_ticket(priority="URGENT")
    resolved = await new_ticket(priority="URGENT")
    clock.advance(minutes=10)
    await api.communicate(answered, "OUTBOUND", "EMAIL")
    await api.communicate(paused, "OUTBOUND", "EMAIL")
    await api.status(paused, "PENDING")
    await api.communicate(resolved, "OUTBOUND", "EMAIL")
    await api.status(resolved, "RESOLVED", resolution="Done")
    # answered: no response breach; its resolution is due 13:00.
    done = await escalate_breaches(client.db, now=at(hours=3))
    assert done == []
    done = await escalate_breaches(client.db, now=at(days=10))
    assert [str(d.ticket_id) for d in done] == [answered["id"]]  # the paused and resolved ones: never
    assert (await api.get(paused))["escalationLevel"] == 0
    assert (await api.get(resolved))["escalationLevel"] == 0


async def test_a_paused_ticket_breaches_after_it_resumes(client, api, new_ticket, new_policy, clock):
    await new_policy()
    ticket = await new_ticket(priority="URGENT")  # resolution due 13:00
    clock.advance(minutes=10)
    await api.communicate(ticket, "OUTBOUND", "EMAIL")
    await api.status(ticket, "PENDING")  # 09:10, 230 minutes left
    clock.set(2026, 3, 3, 9)  # Tuesday 09:00 the customer answers
    await api.communicate(ticket, "INBOUND", "EMAIL")
    t = await api.get(ticket)
    assert t["resolutionDueAt"] == "2026-03-03T12:50:00Z"
    assert await escalate_breaches(client.db, now=at(days=1, hours=3, minutes=49)) == []
    assert len(await escalate_breaches(client.db, now=at(days=1, hours=3, minutes=51))) == 1


async def test_a_breach_before_the_pause_is_still_escalated(client, api, new_ticket, new_policy, clock):
    await new_policy()
    ticket = await new_ticket(priority="URGENT")
    await api.status(ticket, "OPEN")
    clock.advance(minutes=40)  # response due at 09:30 passed unnoticed
    await api.status(ticket, "PENDING")
    done = await escalate_breaches(client.db, now=at(hours=1))
    assert [d.kind for d in done] == ["FIRST_RESPONSE"]
    assert (await api.get(ticket))["status"] == "ESCALATED"


async def test_two_instances_escalate_every_breach_exactly_once(
    client, api, settings, new_ticket, new_policy
):
    await new_policy()
    tickets = [await new_ticket(priority="URGENT") for _ in range(24)]
    second = Database(settings.resolved_database_url(), schema=settings.schema_name)
    try:
        runs = await asyncio.gather(
            escalate_breaches(client.db, now=at(minutes=45), batch_size=5),
            escalate_breaches(second, now=at(minutes=45), batch_size=5),
            escalate_breaches(second, now=at(minutes=45), batch_size=3),
        )
    finally:
        await second.dispose()
    escalated = [str(d.ticket_id) for run in runs for d in run]
    assert sorted(escalated) == sorted(t["id"] for t in tickets)  # each once, none missed
    events = await api.events("ticket.escalated")
    assert sorted(e["subject"] for e in events) == sorted(escalated)
    for t in tickets:
        got = await api.get(t)
        assert got["escalationLevel"] == 1 and got["status"] == "ESCALATED"
    assert await api.count(SlaBreach) == 24


async def test_the_app_runs_the_scheduler_in_the_background(settings, bus, clock, auth_headers, add_customer):
    app = create_app(
        settings.model_copy(update={"escalation_enabled": True, "escalation_interval_seconds": 0.05}), bus=bus
    )
    app.state.clock = clock
    admin = auth_headers("admin")
    async with running(app) as client:
        r = await client.post(
            "/api/v1/sla-policies",
            json={
                "name": "24x7",
                "businessHours": [
                    {"day": d, "start": "00:00", "end": "24:00"}
                    for d in ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
                ],
                "targets": [{"priority": "NORMAL", "firstResponseMinutes": 5, "resolutionMinutes": 60}],
            },
            headers=admin,
        )
        assert r.status_code == 201, r.text
        customer = await add_customer()
        r = await client.post(
            "/api/v1/tickets",
            json={"subject": "S", "description": "D", "type": "QUESTION", "customerId": str(customer)},
            headers=admin,
        )
        ticket_url = f"/api/v1/tickets/{r.json()['id']}"
        clock.advance(minutes=6)

        async def escalated():
            return (await client.get(ticket_url, headers=admin)).json()["escalationLevel"] == 1

        assert await eventually(escalated, timeout=10)
