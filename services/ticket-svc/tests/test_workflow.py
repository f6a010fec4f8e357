"""The ticket's life: status rules, communications, SLA times, escalation, satisfaction."""

import itertools
import uuid

from ticket_svc.models import TicketCommunication
from ticket_svc.service.workflow import ALLOWED

STATUSES = ("NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED")
# How to bring a NEW ticket to each status.
PATHS = {
    "NEW": [],
    "OPEN": ["OPEN"],
    "PENDING": ["OPEN", "PENDING"],
    "ESCALATED": ["ESCALATED"],
    "RESOLVED": ["OPEN", "RESOLVED"],
    "CLOSED": ["OPEN", "RESOLVED", "CLOSED"],
}
EXPECTED = {
    "NEW": {"OPEN", "ESCALATED"},
    "OPEN": {"PENDING", "RESOLVED", "ESCALATED"},
    "PENDING": {"OPEN", "ESCALATED"},
    "ESCALATED": {"OPEN", "PENDING", "RESOLVED", "ESCALATED"},
    "RESOLVED": {"OPEN", "CLOSED"},
    "CLOSED": set(),
}


def body_for(target: str) -> dict:
    return {"status": target, "resolution": "Fixed it", "reason": "Because"}


def test_the_transition_table_is_the_issues():
    assert {k: set(v) for k, v in ALLOWED.items()} == EXPECTED


async def test_every_transition_is_allowed_or_a_422_naming_the_allowed_ones(client, api, agent, new_ticket):
    for start, target in itertools.product(STATUSES, STATUSES):
        ticket = await new_ticket()
        for step in PATHS[start]:
            ticket = await api.status(ticket, step, resolution="Fixed it", reason="Because")
        r = await client.post(f"/api/v1/tickets/{ticket['id']}/status", json=body_for(target), headers=agent)
        if target in EXPECTED[start]:
            assert r.status_code == 200, (start, target, r.text)
            assert r.json()["status"] == target
        else:
            assert r.status_code == 422, (start, target, r.text)
            problem = r.json()
            assert problem["code"] == "INVALID_STATUS_TRANSITION"
            assert problem["currentStatus"] == start
            assert set(problem["allowedStatuses"]) == EXPECTED[start]
            assert (await api.get(ticket))["version"] == ticket["version"]  # nothing written


async def test_resolving_needs_a_resolution(client, api, agent, new_ticket):
    ticket = await api.status(await new_ticket(), "OPEN")
    url = f"/api/v1/tickets/{ticket['id']}/status"
    r = await client.post(url, json={"status": "RESOLVED"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "RESOLUTION_REQUIRED")
    assert r.json()["errors"][0]["field"] == "resolution"
    assert (await api.get(ticket))["status"] == "OPEN"
    r = await client.post(url, json={"status": "RESOLVED", "resolution": "   "}, headers=agent)
    assert r.status_code == 422
    # A resolution already on the ticket is enough.
    r = await client.patch(
        f"/api/v1/tickets/{ticket['id']}",
        json={"resolution": "Replaced toner", "version": ticket["version"]},
        headers=agent,
    )
    assert r.status_code == 200, r.text
    resolved = await api.status(ticket, "RESOLVED")
    assert resolved["resolution"] == "Replaced toner"


async def test_unknown_status_and_escalating_without_reason_are_422(client, api, agent, new_ticket):
    ticket = await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}/status"
    r = await client.post(url, json={"status": "DONE"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")
    r = await client.post(url, json={"status": "ESCALATED"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "REASON_REQUIRED")
    assert (await api.get(ticket))["status"] == "NEW"


async def test_status_events_carry_the_contract_payloads(client, api, agent_id, new_ticket, clock):
    ticket = await new_ticket()
    await api.status(ticket, "OPEN")
    clock.advance(hours=1)
    resolved = await api.status(ticket, "RESOLVED", resolution="Rebooted")
    clock.advance(hours=1)
    await api.status(ticket, "OPEN", reason="Still broken")
    clock.advance(hours=1)
    await api.status(ticket, "RESOLVED", resolution="Replaced")
    closed = await api.status(ticket, "CLOSED")
    events = await api.events()
    assert [(e["type"].removeprefix("crm.ticket."), e["sequence"]) for e in events] == [
        ("created", 1),
        ("status_changed", 2),
        ("status_changed", 3),
        ("resolved", 3),
        ("status_changed", 4),
        ("reopened", 4),
        ("status_changed", 5),
        ("resolved", 5),
        ("status_changed", 6),
        ("closed", 6),
    ]
    data = [e["data"] for e in events]
    assert (
        data[2]["fromStatus"] == "OPEN"
        and data[2]["status"] == "RESOLVED"
        and data[2]["changedBy"] == str(agent_id)
    )
    assert data[3]["resolution"] == "Rebooted" and data[3]["resolvedAt"] == resolved["resolvedAt"]
    assert data[3]["resolvedBy"] == str(agent_id)
    assert data[5]["reason"] == "Still broken" and data[5]["status"] == "OPEN"
    assert data[9]["closedAt"] == closed["closedAt"] == "2026-03-02T12:00:00Z"
    assert data[9]["closedBy"] == str(agent_id)
    assert closed["version"] == 6


async def test_a_closed_ticket_is_final(client, api, agent, new_ticket):
    ticket = await new_ticket()
    for step in ("OPEN", "RESOLVED", "CLOSED"):
        ticket = await api.status(ticket, step, resolution="Done")
    r = await client.post(
        f"/api/v1/tickets/{ticket['id']}/communications",
        json={"direction": "INBOUND", "channel": "EMAIL", "body": "Thanks!"},
        headers=agent,
    )
    assert (r.status_code, r.json()["code"]) == (422, "TICKET_CLOSED")
    r = await client.patch(
        f"/api/v1/tickets/{ticket['id']}", json={"subject": "x", "version": ticket["version"]}, headers=agent
    )
    assert (r.status_code, r.json()["code"]) == (422, "TICKET_CLOSED")
    r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalate", json={"reason": "angry"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "INVALID_STATUS_TRANSITION")
    assert await api.count(TicketCommunication) == 0
    assert (await api.get(ticket))["version"] == ticket["version"]


async def test_first_response_is_the_first_public_outbound_message(api, new_ticket, new_policy, clock):
    await new_policy()
    ticket = await new_ticket()  # Monday 09:00, NORMAL: 240 business minutes to respond
    clock.advance(minutes=30)
    await api.communicate(ticket, "INBOUND", "EMAIL", body="Any news?")
    clock.advance(minutes=30)
    await api.communicate(ticket, "OUTBOUND", "NOTE", body="Looking into it")  # internal note
    clock.advance(minutes=30)
    await api.communicate(ticket, "OUTBOUND", "EMAIL", internal=True, body="also internal")
    t = await api.get(ticket)
    assert t["firstResponseAt"] is None and t["status"] == "NEW"
    clock.advance(minutes=45)
    await api.communicate(ticket, "OUTBOUND", "EMAIL", body="We are on it")
    t = await api.get(ticket)
    assert t["firstResponseAt"] == "2026-03-02T11:15:00Z"
    assert t["responseTime"] == 135
    assert t["status"] == "OPEN"  # answering a NEW ticket opens it
    assert t["responseBreached"] is False
    clock.advance(minutes=10)
    await api.communicate(ticket, "OUTBOUND", "PHONE", body="Called")
    assert (await api.get(ticket))["firstResponseAt"] == "2026-03-02T11:15:00Z"


async def test_response_time_counts_business_minutes_only(api, new_ticket, new_policy, clock):
    await new_policy()
    clock.set(2026, 3, 6, 16, 30)  # Friday 16:30
    ticket = await new_ticket(priority="HIGH")  # 60 business minutes
    assert ticket["firstResponseDueAt"] == "2026-03-09T09:30:00Z"
    clock.set(2026, 3, 9, 9, 10)  # Monday 09:10
    await api.communicate(ticket, "OUTBOUND", "EMAIL")
    t = await api.get(ticket)
    assert t["responseTime"] == 40  # 30 on Friday + 10 on Monday
    assert t["responseBreached"] is False


async def test_a_late_first_response_is_a_recorded_breach(api, new_ticket, new_policy, clock):
    await new_policy()
    ticket = await new_ticket(priority="URGENT")  # 30 minutes
    clock.advance(minutes=45)
    await api.communicate(ticket, "OUTBOUND", "CHAT")
    t = await api.get(ticket)
    assert t["responseTime"] == 45 and t["responseBreached"] is True
    assert t["escalationLevel"] == 0  # recording a late response does not escalate


async def test_resolution_time_leaves_out_the_pending_time(api, new_ticket, new_policy, clock):
    await new_policy()
    ticket = await new_ticket()  # Monday 09:00; resolution target 2400 minutes
    await api.status(ticket, "OPEN")
    clock.advance(hours=1)
    await api.communicate(ticket, "OUTBOUND", "EMAIL", body="Which model is it?")
    pending = await api.status(ticket, "PENDING")
    assert pending["slaPaused"] is True
    clock.set(2026, 3, 3, 11)  # customer answers Tuesday 11:00: the ticket opens again
    await api.communicate(ticket, "INBOUND", "EMAIL", body="Model X")
    t = await api.get(ticket)
    assert t["status"] == "OPEN" and t["slaPaused"] is False
    # The due time moved on by the paused business time (Mon 10-17, Tue 9-11: 540 minutes).
    assert t["resolutionDueAt"] == "2026-03-10T10:00:00Z"  # 2340 left from Tue 11:00 (was Fri 17:00)
    clock.advance(hours=2)
    resolved = await api.status(ticket, "RESOLVED", resolution="Sent driver")
    assert resolved["resolvedAt"] == "2026-03-03T13:00:00Z"
    assert resolved["resolutionTime"] == 60 + 120
    assert resolved["slaPaused"] is True and resolved["resolutionBreached"] is False


async def test_customer_reply_reopens_a_resolved_ticket_within_the_window(api, new_ticket, clock):
    ticket = await api.status(await new_ticket(), "OPEN")
    await api.status(ticket, "RESOLVED", resolution="Fixed")
    clock.advance(hours=100)
    await api.communicate(ticket, "INBOUND", "EMAIL", body="Still broken")
    t = await api.get(ticket)
    assert t["status"] == "OPEN" and t["resolvedAt"] is None and t["resolutionTime"] is None
    reopened = await api.events("ticket.reopened")
    assert [e["data"]["reason"] for e in reopened] == ["Customer replied"]
    (added,) = (await api.events("ticket.communication_added"))[-1:]
    assert added["data"]["direction"] == "INBOUND" and added["sequence"] == t["version"]

    await api.status(ticket, "RESOLVED", resolution="Fixed again")
    clock.advance(hours=169)  # past the 168 h window
    await api.communicate(ticket, "INBOUND", "EMAIL", body="One more thing")
    assert (await api.get(ticket))["status"] == "RESOLVED"
    assert len(await api.events("ticket.reopened")) == 1


async def test_communications_are_listed_and_published(
    client, api, agent, agent_id, new_ticket, add_user, clock
):
    ticket = await new_ticket()
    colleague = await add_user("Kim")
    first = await api.communicate(
        ticket,
        "OUTBOUND",
        "EMAIL",
        body="Hi",
        authorId=str(colleague),
        attachments=[{"fileName": "log.txt", "contentType": "text/plain", "size": 12}],
    )
    assert first["authorId"] == str(colleague) and first["recordedById"] == str(agent_id)
    assert first["attachments"] == [
        {"fileName": "log.txt", "contentType": "text/plain", "size": 12, "url": None}
    ]
    clock.advance(minutes=1)
    inbound = await api.communicate(ticket, "INBOUND", "PORTAL", body="Thanks")
    assert inbound["customerId"] == ticket["customerId"] and inbound["authorId"] is None
    clock.advance(minutes=1)
    note = await api.communicate(ticket, "OUTBOUND", "NOTE", body="VIP")
    assert note["internal"] is True

    url = f"/api/v1/tickets/{ticket['id']}/communications"
    page = (await client.get(url, headers=agent)).json()
    assert [c["body"] for c in page["items"]] == ["Hi", "Thanks", "VIP"] and page["total"] == 3
    assert [
        c["body"]
        for c in (await client.get(url, params={"internal": "false"}, headers=agent)).json()["items"]
    ] == ["Hi", "Thanks"]
    assert [
        c["body"]
        for c in (await client.get(url, params={"direction": "INBOUND"}, headers=agent)).json()["items"]
    ] == ["Thanks"]

    events = await api.events("ticket.communication_added")
    assert [e["data"]["communicationId"] for e in events] == [first["id"], inbound["id"], note["id"]]
    assert events[0]["data"] == {
        "ticketId": ticket["id"],
        "communicationId": first["id"],
        "customerId": ticket["customerId"],
        "direction": "OUTBOUND",
        "channel": "EMAIL",
        "internal": False,
        "at": "2026-03-02T09:00:00Z",
    }


async def test_bad_communications_are_422_and_write_nothing(client, api, agent, new_ticket):
    ticket = await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}/communications"
    for body, code in (
        ({"direction": "INBOUND", "channel": "NOTE", "body": "x"}, "INVALID_COMMUNICATION"),
        (
            {"direction": "INBOUND", "channel": "EMAIL", "internal": True, "body": "x"},
            "INVALID_COMMUNICATION",
        ),
        (
            {"direction": "INBOUND", "channel": "EMAIL", "body": "x", "authorId": ticket["id"]},
            "INVALID_COMMUNICATION",
        ),
        (
            {"direction": "OUTBOUND", "channel": "EMAIL", "body": "x", "authorId": ticket["id"]},
            "UNKNOWN_USER",
        ),
        ({"direction": "SIDEWAYS", "channel": "EMAIL", "body": "x"}, "VALIDATION_ERROR"),
        ({"direction": "OUTBOUND", "channel": "FAX", "body": "x"}, "VALIDATION_ERROR"),
        ({"direction": "OUTBOUND", "channel": "EMAIL", "body": ""}, "VALIDATION_ERROR"),
        (
            {"direction": "OUTBOUND", "channel": "EMAIL", "body": "x", "attachments": [{"size": 1}]},
            "VALIDATION_ERROR",
        ),
    ):
        r = await client.post(url, json=body, headers=agent)
        assert (r.status_code, r.json()["code"]) == (422, code), (body, r.text)
    assert await api.count(TicketCommunication) == 0
    assert len(await api.events()) == 1  # ticket.created only


async def test_manual_escalation_raises_the_level(client, api, agent, agent_id, new_ticket):
    ticket = await api.status(await new_ticket(), "OPEN")
    first = await api.escalate(ticket, "Customer threatens to leave")
    assert first["status"] == "ESCALATED" and first["escalationLevel"] == 1
    second = await api.escalate(ticket, "CEO called")
    assert second["escalationLevel"] == 2
    events = [
        e for e in await api.events() if e["type"] in ("crm.ticket.escalated", "crm.ticket.status_changed")
    ]
    assert [e["type"] for e in events] == [
        "crm.ticket.status_changed",  # NEW -> OPEN
        "crm.ticket.status_changed",  # OPEN -> ESCALATED
        "crm.ticket.escalated",
        "crm.ticket.escalated",
    ]
    assert (
        events[2]["data"]["escalationLevel"] == 1
        and events[2]["data"]["reason"] == "Customer threatens to leave"
    )
    assert events[2]["data"]["automatic"] is False and events[2]["data"]["escalatedBy"] == str(agent_id)
    assert events[3]["data"]["escalationLevel"] == 2
    # Back to work, resolve: escalation level stays as a record.
    resolved = await api.status(ticket, "RESOLVED", resolution="Done")
    assert resolved["escalationLevel"] == 2
    r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalate", json={"reason": ""}, headers=agent)
    assert r.status_code == 422


async def test_escalation_takes_an_optional_version(client, api, agent, new_ticket):
    ticket = await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}/escalate"
    r = await client.post(url, json={"reason": "x", "version": 7}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (412, "VERSION_CONFLICT")
    r = await client.post(url, json={"reason": "x"}, headers={**agent, "If-Match": 'W/"1"'})
    assert r.status_code == 200 and r.headers["etag"] == 'W/"2"'


async def test_satisfaction_rules(client, api, agent, new_ticket, clock):
    ticket = await api.status(await new_ticket(), "OPEN")
    url = f"/api/v1/tickets/{ticket['id']}/satisfaction"
    r = await client.post(url, json={"rating": 5}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "TICKET_NOT_RESOLVED")
    await api.status(ticket, "RESOLVED", resolution="Fixed")
    for bad in (
        {"rating": 0},
        {"rating": 6},
        {"rating": 4.5},
        {"rating": "great"},
        {},
        {"rating": 3, "stars": 3},
    ):
        r = await client.post(url, json=bad, headers=agent)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), bad
    assert (await api.get(ticket))["satisfactionRating"] is None

    r = await client.post(url, json={"rating": 2, "comment": "slow"}, headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["satisfactionRating"] == 2 and r.json()["satisfactionRatedAt"] == "2026-03-02T09:00:00Z"
    clock.advance(hours=23)  # within the 24 h window: replaces
    r = await client.post(url, json={"rating": 4}, headers=agent)
    assert r.json()["satisfactionRating"] == 4 and r.json()["satisfactionComment"] is None
    await api.status(ticket, "CLOSED")
    clock.advance(hours=2)  # 25 h after the first rating: final
    r = await client.post(url, json={"rating": 1}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (409, "SATISFACTION_ALREADY_RATED")
    assert (await api.get(ticket))["satisfactionRating"] == 4


async def test_a_new_communication_is_located_and_readable_on_its_own(client, agent, new_ticket):
    ticket, other = await new_ticket(), await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}/communications"
    created = await client.post(
        url, json={"direction": "OUTBOUND", "channel": "EMAIL", "body": "Hi"}, headers=agent
    )
    assert created.status_code == 201
    assert created.headers["Location"] == f"{url}/{created.json()['id']}"

    read = await client.get(created.headers["Location"], headers=agent)
    assert read.status_code == 200 and read.json() == created.json()

    # Through another ticket, or an id that never existed, it is not there.
    for missing in (
        f"/api/v1/tickets/{other['id']}/communications/{created.json()['id']}",
        f"{url}/{uuid.uuid4()}",
    ):
        answer = await client.get(missing, headers=agent)
        assert answer.status_code == 404 and answer.json()["code"] == "COMMUNICATION_NOT_FOUND"
