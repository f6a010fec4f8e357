"""The kept metric aggregates (ticket_svc.service.metric_totals, kept by triggers) answer exactly what a scan
of the tickets answers, after every kind of write: creates, status changes, responses, ratings,
reassignments, merges, erasure, a breach marked by the scheduler, deletes and updates in plain SQL."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common.contracts.customer import CustomerErased
from crm_common.events.envelope import new_event
from crm_common.testing.plugin import publish
from ticket_svc.models import Ticket
from ticket_svc.service import metrics
from ticket_svc.service.metric_totals import fold

from .test_customer_events import merged_event
from .test_metrics import scenario  # noqa: F401 (fixture)


async def assert_kept_equals_scan(client, now: datetime, teams, *, folded: bool = False) -> dict:
    """Every shape the aggregates serve, compared with the scan of the same request (after folding
    the deltas into the kept tables, or with the deltas as they are)."""
    if folded:
        async with client.db.transaction() as session:
            await fold(session)
    async with client.db.transaction() as session:
        answers = {}
        for team_id in (None, *teams):
            for group_by in (None, "team"):
                shape = {"team_id": team_id, "group_by": group_by}
                kept = await metrics.ticket_metrics(session, now=now, kept=True, **shape)
                scanned = await metrics.ticket_metrics(session, now=now, kept=False, **shape)
                assert kept.model_dump() == scanned.model_dump(), shape
                answers[(team_id, group_by)] = kept
        return answers


async def test_kept_metrics_equal_the_scan_after_every_kind_of_write(
    client,
    bus,
    api,
    admin,
    scenario,  # noqa: F811 (the fixture imported above)
    new_ticket,
    add_customer,
    clock,
):
    team_a, team_b = uuid.UUID(scenario["team_a"]), uuid.UUID(scenario["team_b"])
    teams = (team_a, team_b)
    t1, t2, t3, t4, t5 = scenario["tickets"]
    now = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
    first = await assert_kept_equals_scan(client, now, teams)
    assert first[(None, None)].overall.total == 5
    # t3's resolution (due 13:00) is overdue and not marked yet: counted at read time.
    assert first[(None, None)].overall.sla.resolution_breached == 1

    # The admin API answers from the aggregates, the same figures.
    r = await client.get("/api/v1/tickets/metrics", params={"groupBy": "team"}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["overall"]["total"] == 5 and len(r.json()["groups"]) == 3

    # More tickets, worked on: responses, resolutions, a pause, an escalation, ratings.
    customer = await add_customer("Merged away")
    survivor = await add_customer("Survivor")
    extra = [
        await new_ticket(priority="HIGH", teamId=str(team_a), customerId=str(customer)),
        await new_ticket(priority="URGENT", customerId=str(customer)),
        await new_ticket(priority="LOW", teamId=str(team_b), customerId=str(survivor)),
    ]
    clock.set(2026, 3, 2, 15, 0)
    await api.communicate(extra[0], "OUTBOUND", "EMAIL")
    await api.status(extra[1], "OPEN")
    await api.status(extra[1], "PENDING")
    await api.escalate(extra[2])
    await api.status(extra[0], "RESOLVED", resolution="Done")
    r = await client.post(
        f"/api/v1/tickets/{extra[0]['id']}/satisfaction", json={"rating": 4}, headers=api.headers
    )
    assert r.status_code == 200, r.text
    # Reassignments: to the other team, to no team; a priority change.
    for ticket, body in (
        (t1, {"teamId": str(team_b)}),
        (t4, {"teamId": str(team_a), "priority": "HIGH"}),
        (extra[2], {"teamId": None}),
    ):
        current = await api.get(ticket)
        r = await client.patch(
            f"/api/v1/tickets/{ticket['id']}",
            json={**body, "version": current["version"]},
            headers=api.headers,
        )
        assert r.status_code == 200, r.text
    await assert_kept_equals_scan(client, datetime(2026, 3, 2, 15, 30, tzinfo=UTC), teams)
    await assert_kept_equals_scan(client, datetime(2026, 3, 2, 15, 30, tzinfo=UTC), teams, folded=True)

    # A merge re-points tickets; an erasure scrubs them (both rewrite rows in SQL).
    await publish(bus, merged_event(survivor, customer))
    erased = CustomerErased(
        customer_id=survivor, customer_number="CUST-2026-000002", erased_at=datetime.now(UTC)
    )
    await publish(
        bus,
        new_event("customer.erased", service="customer", subject=survivor, data=erased.dump(), sequence=9),
    )
    # The scheduler marks a breach; a data fix in SQL reopens and deletes tickets.
    async with client.db.transaction() as session:
        await session.execute(
            sa.update(Ticket)
            .where(Ticket.id == uuid.UUID(t3["id"]))
            .values(resolution_breached_at=datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
        )
        await session.execute(
            sa.update(Ticket)
            .where(Ticket.id.in_([uuid.UUID(t5["id"]), uuid.UUID(t2["id"])]))
            .values(status="OPEN", satisfaction_rating=None, resolution_time=None)
        )
        await session.execute(sa.delete(Ticket).where(Ticket.id == uuid.UUID(t1["id"])))
    later = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)  # more due times have passed
    await assert_kept_equals_scan(client, later, teams)
    last = await assert_kept_equals_scan(client, later, teams, folded=True)
    overall = last[(None, None)].overall
    assert overall.total == 7 and overall.satisfaction.count == 1

    # Every ticket deleted: the figures of nothing.
    async with client.db.transaction() as session:
        await session.execute(sa.delete(Ticket))
    await assert_kept_equals_scan(client, later, teams)
    empty = await assert_kept_equals_scan(client, later, teams, folded=True)
    assert empty[(None, "team")].overall.total == 0 and empty[(None, "team")].groups == []
