"""Tickets as a client sees them: create, read, edit, list — on SQLite and on Postgres."""

import asyncio
import re
import uuid

import pytest
from crm_common.consistency import decode
from crm_common.testing.plugin import admitted
from ticket_svc.models import Ticket


async def test_create_returns_the_ticket_and_writes_ticket_created(
    client, api, agent, agent_id, add_customer
):
    customer = await add_customer("Acme Ltd", number="CUST-2026-000042")
    body = {
        "subject": "Printer on fire",
        "description": "Smoke everywhere.",
        "customerId": str(customer),
        "type": "INCIDENT",
        "priority": "HIGH",
        "category": "Hardware",
        "subcategory": "Printers",
        "tags": ["fire", "printer", "fire"],
        "customFields": {"floor": 3},
    }
    r = await client.post("/api/v1/tickets", json=body, headers={**agent, "X-Request-ID": "req-7"})
    assert r.status_code == 201, r.text
    t = r.json()
    assert re.fullmatch(r"TKT-2026-\d{6}", t["ticketNumber"])
    assert t["status"] == "NEW" and t["priority"] == "HIGH" and t["type"] == "INCIDENT"
    assert t["customerId"] == str(customer)
    assert t["customerName"] == "Acme Ltd" and t["customerNumber"] == "CUST-2026-000042"
    assert t["tags"] == ["fire", "printer"]
    assert t["customFields"] == {"floor": 3}
    assert t["escalationLevel"] == 0 and t["version"] == 1
    assert t["assignedToId"] is None and t["createdById"] == str(agent_id)
    assert t["createdAt"] == "2026-03-02T09:00:00Z"
    # No SLA policy exists: no due times, nothing breached.
    assert t["slaPolicyId"] is None and t["firstResponseDueAt"] is None and t["resolutionDueAt"] is None
    assert t["responseBreached"] is False and t["resolutionBreached"] is False
    assert r.headers["location"] == f"/api/v1/tickets/{t['id']}"
    assert r.headers["etag"] == 'W/"1"'
    assert await api.get(t) == t

    (event,) = await api.events()
    assert event["type"] == "crm.ticket.created"
    assert event["source"] == "/crm/ticket" and event["subject"] == t["id"]
    assert event["sequence"] == 1 and event["correlationid"] == "req-7"
    assert event["data"] == {
        "ticketId": t["id"],
        "ticketNumber": t["ticketNumber"],
        "subject": "Printer on fire",
        "customerId": str(customer),
        "status": "NEW",
        "priority": "HIGH",
        "type": "INCIDENT",
        "assignedToId": None,
        "createdBy": str(agent_id),
    }
    # Its consistency token names the event, so a read elsewhere can wait for it.
    assert uuid.UUID(event["id"]) in [
        event_id for _, event_id in decode([r.headers["crm-consistency-token"]])
    ]


async def test_unknown_customer_is_a_422_and_nothing_is_written(client, api, agent):
    body = {"subject": "S", "description": "D", "type": "QUESTION", "customerId": str(uuid.uuid4())}
    r = await client.post("/api/v1/tickets", json=body, headers=agent)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "UNKNOWN_CUSTOMER"
    assert r.json()["errors"][0]["field"] == "customerId"
    assert await api.count(Ticket) == 0
    assert await api.events() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"subject": ""}, "subject"),
        ({"subject": "x" * 301}, "subject"),
        ({"description": None}, "description"),
        ({"type": "BUG"}, "type"),
        ({"priority": "CRITICAL"}, "priority"),
        ({"customerId": "not-a-uuid"}, "customerId"),
        ({"status": "OPEN"}, "status"),  # status is not set on create
        ({"tags": ["x" * 51]}, "tags.0"),
        ({"dueDate": "2026-03-05T10:00:00"}, "dueDate"),  # no time zone
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_input_is_a_422_problem_and_writes_nothing(client, api, agent, add_customer, change, field):
    body = {"subject": "S", "description": "D", "type": "QUESTION", "customerId": str(await add_customer())}
    r = await client.post("/api/v1/tickets", json={**body, **change}, headers=agent)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in r.json()["errors"]}
    assert await api.count(Ticket) == 0


async def test_assignee_and_team_must_exist_and_be_active(
    client, api, agent, add_customer, add_user, add_team
):
    customer = str(await add_customer())
    base = {"subject": "S", "description": "D", "type": "QUESTION", "customerId": customer}
    inactive = await add_user(active=False)
    for bad, code in (
        ({"assignedToId": str(uuid.uuid4())}, "UNKNOWN_USER"),
        ({"assignedToId": str(inactive)}, "UNKNOWN_USER"),
        ({"teamId": str(uuid.uuid4())}, "UNKNOWN_TEAM"),
        ({"relatedTickets": [str(uuid.uuid4())]}, "UNKNOWN_TICKET"),
    ):
        r = await client.post("/api/v1/tickets", json={**base, **bad}, headers=agent)
        assert (r.status_code, r.json()["code"]) == (422, code), r.text
    assert await api.count(Ticket) == 0

    sam, team = await add_user("Sam Agent"), await add_team()
    first = await client.post("/api/v1/tickets", json=base, headers=agent)
    r = await client.post(
        "/api/v1/tickets",
        json={**base, "assignedToId": str(sam), "teamId": str(team), "relatedTickets": [first.json()["id"]]},
        headers=agent,
    )
    assert r.status_code == 201, r.text
    assert r.json()["assignedToName"] == "Sam Agent"
    assert r.json()["relatedTickets"] == [first.json()["id"]]


async def test_concurrent_creates_get_distinct_consecutive_numbers(client, agent, add_customer):
    customer = str(await add_customer())
    body = {"subject": "S", "description": "D", "type": "QUESTION", "customerId": customer}
    # A client honouring 503 OVERLOADED's Retry-After, as on a loaded machine the burst may meet it.
    responses = await asyncio.gather(
        *(admitted(lambda: client.post("/api/v1/tickets", json=body, headers=agent)) for _ in range(20))
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    numbers = sorted(int(r.json()["ticketNumber"][-6:]) for r in responses)
    assert numbers == list(range(1, 21))


async def test_a_failed_create_gives_its_number_back(client, agent, new_ticket, add_customer):
    first = await new_ticket()
    bad = {
        "subject": "S",
        "description": "D",
        "type": "QUESTION",
        "customerId": str(await add_customer()),
        "assignedToId": str(uuid.uuid4()),
    }
    assert (await client.post("/api/v1/tickets", json=bad, headers=agent)).status_code == 422
    second = await new_ticket()
    assert int(second["ticketNumber"][-6:]) == int(first["ticketNumber"][-6:]) + 1


async def test_permissions(client, auth_headers, new_ticket):
    ticket = await new_ticket()
    assert (await client.get("/api/v1/tickets")).status_code == 401
    r = await client.get(f"/api/v1/tickets/{ticket['id']}", headers=auth_headers("marketer"))
    assert (r.status_code, r.json()["code"]) == (403, "FORBIDDEN")
    # A sales rep reads tickets (their customers' problems) but does not work them.
    rep = auth_headers("sales_rep")
    assert (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=rep)).status_code == 200
    r = await client.post(f"/api/v1/tickets/{ticket['id']}/escalate", json={}, headers=rep)
    assert (r.status_code, r.json()["code"]) == (403, "FORBIDDEN") and "`tickets:write`" in r.json()["detail"]
    assert (await client.get("/api/v1/tickets", headers=auth_headers("admin"))).status_code == 200


async def test_unknown_ticket_is_a_404(client, agent):
    r = await client.get(f"/api/v1/tickets/{uuid.uuid4()}", headers=agent)
    assert (r.status_code, r.json()["code"]) == (404, "TICKET_NOT_FOUND")


async def test_patch_needs_the_version_and_refuses_a_stale_one(client, agent, new_ticket, add_user):
    ticket = await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}"
    r = await client.patch(url, json={"subject": "New"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (428, "PRECONDITION_REQUIRED")
    sam = await add_user("Sam")
    r = await client.patch(
        url,
        json={"subject": "Printer smoking", "assignedToId": str(sam), "tags": ["a"]},
        headers={**agent, "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["subject"] == "Printer smoking" and r.json()["assignedToName"] == "Sam"
    assert r.json()["version"] == 2 and r.headers["etag"] == 'W/"2"'
    stale = await client.patch(url, json={"subject": "Other", "version": 1}, headers=agent)
    assert (stale.status_code, stale.json()["code"]) == (412, "VERSION_CONFLICT")
    for bad, _field in (
        ({"subject": None}, "body"),
        ({"priority": "BAD"}, "priority"),
        ({"status": "OPEN"}, "status"),
    ):
        r = await client.patch(url, json={**bad, "version": 2}, headers=agent)
        assert r.status_code == 422, r.text
    r = await client.patch(url, json={"relatedTickets": [ticket["id"]], "version": 2}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "UNKNOWN_TICKET")
    assert (await client.get(url, headers=agent)).json()["subject"] == "Printer smoking"


async def test_concurrent_patches_one_wins_the_other_is_412(client, agent, new_ticket):
    ticket = await new_ticket()
    url = f"/api/v1/tickets/{ticket['id']}"

    def patch(i: int):
        return lambda: client.patch(url, json={"subject": f"S{i}", "version": 1}, headers=agent)

    # Each a client honouring 503 OVERLOADED's Retry-After: exactly one of the final answers wins.
    responses = await asyncio.gather(*(admitted(patch(i)) for i in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 412, 412, 412]
    assert {r.json()["code"] for r in responses if r.status_code == 412} == {"VERSION_CONFLICT"}


async def test_list_filters_sorts_searches_and_pages(
    client, agent, new_ticket, add_customer, add_team, clock
):
    acme, globex = await add_customer("Acme"), await add_customer("Globex")
    team = await add_team()
    made = []
    for subject, priority, customer, tags in [
        ("Printer on fire", "URGENT", acme, ["fire"]),
        ("Password reset", "LOW", acme, ["account"]),
        ("Invoice wrong", "NORMAL", globex, ["billing", "account"]),
        ("Printer jammed", "HIGH", globex, []),
    ]:
        clock.advance(minutes=1)
        made.append(
            await new_ticket(
                subject=subject,
                priority=priority,
                customerId=str(customer),
                tags=tags,
                **({"teamId": str(team)} if customer == globex else {}),
            )
        )

    async def listing(**params):
        r = await client.get("/api/v1/tickets", params=params, headers=agent)
        assert r.status_code == 200, r.text
        return r.json()

    page = await listing()
    assert (
        page["total"] == 4 and next(t["subject"] for t in page["items"]) == "Printer jammed"
    )  # newest first
    assert [t["subject"] for t in (await listing(sort="-priority"))["items"]] == [
        "Printer on fire",
        "Printer jammed",
        "Invoice wrong",
        "Password reset",
    ]
    assert {t["subject"] for t in (await listing(q="printer"))["items"]} == {
        "Printer on fire",
        "Printer jammed",
    }
    assert [t["subject"] for t in (await listing(q=made[2]["ticketNumber"]))["items"]] == ["Invoice wrong"]
    assert {t["subject"] for t in (await listing(customerId=str(acme)))["items"]} == {
        "Printer on fire",
        "Password reset",
    }
    assert {t["subject"] for t in (await listing(teamId=str(team)))["items"]} == {
        "Invoice wrong",
        "Printer jammed",
    }
    assert {t["subject"] for t in (await listing(priority=["LOW", "URGENT"]))["items"]} == {
        "Printer on fire",
        "Password reset",
    }
    assert {t["subject"] for t in (await listing(tag="account"))["items"]} == {
        "Password reset",
        "Invoice wrong",
    }
    assert {t["subject"] for t in (await listing(tag=["fire", "billing"]))["items"]} == {
        "Printer on fire",
        "Invoice wrong",
    }
    assert (await listing(status="CLOSED"))["total"] == 0
    paged = await listing(sort="subject", pageSize=3, page=2)
    assert paged["total"] == 4 and [t["subject"] for t in paged["items"]] == ["Printer on fire"]
    r = await client.get("/api/v1/tickets", params={"sort": "bogus"}, headers=agent)
    assert (r.status_code, r.json()["code"]) == (422, "INVALID_SORT")
    r = await client.get("/api/v1/tickets", params={"status": "WHATEVER"}, headers=agent)
    assert r.status_code == 422


async def test_a_retried_create_with_an_idempotency_key_creates_one_ticket(client, api, agent, add_customer):
    body = {"subject": "S", "description": "D", "type": "QUESTION", "customerId": str(await add_customer())}
    headers = {**agent, "Idempotency-Key": "create-1"}
    first = await client.post("/api/v1/tickets", json=body, headers=headers)
    again = await client.post("/api/v1/tickets", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = await client.post("/api/v1/tickets", json={**body, "subject": "T"}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "IDEMPOTENCY_KEY_REUSED")
    assert await api.count(Ticket) == 1
    assert len(await api.events("ticket.created")) == 1


async def test_patch_tells_a_field_not_sent_from_null(client, agent, new_ticket, add_user):
    """Not sent: the field keeps its value. null: a field a ticket may lack is cleared; one every
    ticket has is a 422 that changes nothing, in a PATCH and in a batch update alike."""
    sam = await add_user("Sam")
    ticket = await new_ticket(category="Hardware", assignedToId=str(sam), tags=["printer"])
    url = f"/api/v1/tickets/{ticket['id']}"
    for field in ("subject", "description", "type", "priority", "relatedTickets", "tags", "customFields"):
        r = await client.patch(url, json={field: None, "version": 1}, headers=agent)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
        item = {"id": ticket["id"], field: None, "version": 1}
        r = await client.post("/api/v1/tickets/batch/update", json={"items": [item]}, headers=agent)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
    assert (await client.get(url, headers=agent)).json()["version"] == 1

    r = await client.patch(url, json={"category": None, "assignedToId": None, "version": 1}, headers=agent)
    assert r.status_code == 200, r.text
    after = r.json()
    assert (after["category"], after["assignedToId"], after["assignedToName"]) == (None, None, None)
    kept = ("subject", "description", "type", "priority", "tags", "customFields", "customerId")
    assert {k: after[k] for k in kept} == {k: ticket[k] for k in kept}
