"""The console's tickets, agenda and campaign pages over HTTP (the browser tests drive them as a person
would): SLA marks, status changes and the conversation, the agenda in the user's time zone, a
campaign's funnel."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.console.ticket_pages import sla_marks
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_console import csrf_in, sign_in
from .test_dashboard import settings_for

SERVICES = ("customer", "pipeline", "activity", "ticket", "campaign")


@pytest.fixture
async def gw(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as client:
        yield client


async def _in_time_zone(gw, admin, zone: str) -> None:
    me = (await gw.get("/api/v1/me", headers=admin)).json()
    user = await gw.get(f"/api/v1/users/{me['id']}", headers=admin)
    r = await gw.patch(
        f"/api/v1/users/{me['id']}",
        json={"timeZone": zone},
        headers={**admin, "If-Match": user.headers["etag"]},
    )
    assert r.status_code == 200, r.text


async def _ticket(gw, admin, **fields) -> dict:
    customer = await gw.post(
        "/api/v1/customers", json={"lastName": "Needs Help", "email": "help@example.com"}, headers=admin
    )
    body = {
        "subject": "Printer on fire",
        "description": "Smoke.",
        "type": "INCIDENT",
        "priority": "URGENT",
        "customerId": customer.json()["id"],
        **fields,
    }

    async def create():  # once ticket-svc has heard of the customer (an event)
        r = await gw.post("/api/v1/tickets", json=body, headers=admin)
        return r.json() if r.status_code == 201 else None

    ticket = await eventually(create)
    assert ticket is not None, "ticket-svc never accepted the customer"
    return ticket


def test_sla_marks_say_breached_due_soon_met_or_paused():
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    soon, later = "2026-12-07T12:30:00Z", "2026-12-07T18:00:00Z"
    base = {"firstResponseDueAt": soon, "resolutionDueAt": later}
    assert [m["state"] for m in sla_marks(base, now)] == ["soon", "due"]
    assert [m["state"] for m in sla_marks({**base, "responseBreached": True}, now)] == ["breached", "due"]
    assert [m["state"] for m in sla_marks({**base, "firstResponseAt": soon, "slaPaused": True}, now)] == [
        "met",
        "paused",
    ]
    assert [m["state"] for m in sla_marks({}, now)] == ["none", "none"]


async def test_the_ticket_list_shows_due_times_in_the_users_zone(gw):
    admin = await login(gw)
    await _in_time_zone(gw, admin, "Asia/Shanghai")
    ticket = await _ticket(gw, admin)
    await sign_in(gw)
    page = await gw.get("/app/tickets", params={"priority": "URGENT"})
    assert page.status_code == 200
    row = re.search(rf'<tr data-id="{ticket["id"]}">(.*?)</tr>', page.text, re.S).group(1)
    due = datetime.fromisoformat(ticket["firstResponseDueAt"].replace("Z", "+00:00"))
    assert (due + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") in row  # Shanghai is UTC+8
    # URGENT: a first response is due within the hour, the resolution in 4 hours.
    first, resolution = re.findall(r'<td class="sla sla-(\w+)">', row)
    assert (first, resolution) == ("soon", "due") and "Due within the hour" in row
    breached = await gw.get("/app/tickets", params={"breached": "true"})
    assert ticket["ticketNumber"] not in breached.text


async def test_a_ticket_page_changes_status_and_holds_the_conversation(gw):
    admin = await login(gw)
    ticket = await _ticket(gw, admin)
    await sign_in(gw)
    page = await gw.get(f"/app/tickets/{ticket['id']}")
    assert page.status_code == 200 and "Printer on fire" in page.text
    options = re.search(r'<select id="new-status" name="status">(.*?)</select>', page.text, re.S).group(1)
    assert re.findall(r'value="([A-Z]+)"', options) == ["OPEN", "ESCALATED"]  # NEW's allowed moves
    csrf = csrf_in(page.text)

    no_reason = await gw.post(
        f"/app/tickets/{ticket['id']}/status", data={"csrf": csrf, "status": "ESCALATED"}
    )
    assert no_reason.status_code == 422 and 'class="message error"' in no_reason.text
    assert (await gw.get(f"/api/v1/tickets/{ticket['id']}", headers=admin)).json()["status"] == "NEW"

    reply = await gw.post(
        f"/app/tickets/{ticket['id']}/communications",
        data={"csrf": csrf, "direction": "OUTBOUND", "channel": "EMAIL", "body": "We are on it."},
    )
    assert reply.status_code == 303
    after = await gw.get(reply.headers["location"])
    assert "We are on it." in after.text
    assert 'id="ticket-status">OPEN<' in after.text  # the first answer opened it

    resolve = await gw.post(f"/app/tickets/{ticket['id']}/status", data={"csrf": csrf, "status": "RESOLVED"})
    assert resolve.status_code == 422 and "resolution" in resolve.text.lower()
    resolved = await gw.post(
        f"/app/tickets/{ticket['id']}/status",
        data={"csrf": csrf, "status": "RESOLVED", "resolution": "Replaced the printer."},
    )
    assert resolved.status_code == 303
    assert (await gw.get(f"/api/v1/tickets/{ticket['id']}", headers=admin)).json()["status"] == "RESOLVED"


async def test_the_agenda_sorts_work_into_overdue_today_and_upcoming_in_the_users_zone(gw):
    admin = await login(gw)
    await _in_time_zone(gw, admin, "Asia/Shanghai")
    now = datetime.now(UTC)
    for subject, start in (
        ("Chase invoice", now - timedelta(days=3)),
        ("Call back now", now),
        ("Quarterly review", now + timedelta(days=2)),
    ):
        r = await gw.post(
            "/api/v1/activities",
            json={"type": "TASK", "subject": subject, "startDate": start.isoformat()},
            headers=admin,
        )
        assert r.status_code == 201, r.text
    await sign_in(gw)
    page = await gw.get("/app/agenda")
    assert page.status_code == 200
    sections = {
        key: page.text[page.text.index(f'id="agenda-{key}"') :].split("</section>")[0]
        for key in ("overdue", "dueToday", "upcoming")
    }
    assert "Chase invoice" in sections["overdue"]
    assert "Call back now" in sections["dueToday"]
    assert "Quarterly review" in sections["upcoming"]
    assert "Asia/Shanghai" in page.text
    assert (now + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M") in sections["dueToday"]

    done = await gw.post(
        re.search(r'action="(/app/activities/[^"]+/complete)"', sections["dueToday"]).group(1),
        data={"csrf": csrf_in(page.text)},
    )
    assert done.status_code == 303
    assert "Call back now" not in (await gw.get("/app/agenda")).text


async def test_a_campaign_page_shows_its_funnel_and_offers_only_allowed_actions(gw):
    admin = await login(gw)
    campaign = await gw.post(
        "/api/v1/campaigns",
        json={"name": "Winter mailing", "type": "EMAIL", "budget": "500.00"},
        headers=admin,
    )
    assert campaign.status_code == 201, campaign.text
    await sign_in(gw)
    listed = await gw.get("/app/campaigns")
    assert "Winter mailing" in listed.text and "500.00 USD" in listed.text
    page = await gw.get(f"/app/campaigns/{campaign.json()['id']}")
    assert page.status_code == 200
    funnel = page.text[page.text.index('id="funnel-table"') :]
    assert re.search(r"Targets</th><td>0</td>", funnel) and "Converted" in funnel
    assert "/pause" not in page.text and "/activate" in page.text  # PLANNING can start, not pause
    activated = await gw.post(
        f"/app/campaigns/{campaign.json()['id']}/activate", data={"csrf": csrf_in(page.text)}
    )
    assert activated.status_code == 303
    again = await gw.get(activated.headers["location"])
    assert 'id="campaign-status">ACTIVE<' in again.text and "/pause" in again.text


async def test_the_kanban_shows_a_few_cards_per_column_and_more_on_request(gw):
    admin = await login(gw)
    customer = await gw.post(
        "/api/v1/customers", json={"lastName": "Busy", "email": "busy@example.com"}, headers=admin
    )
    body = {"title": "Deal 0", "customerId": customer.json()["id"], "amount": "1.00"}

    async def first():  # once pipeline-svc has heard of the customer (an event)
        r = await gw.post("/api/v1/opportunities", json=body, headers=admin)
        return r if r.status_code == 201 else None

    assert await eventually(first) is not None
    for i in range(1, 21):
        r = await gw.post("/api/v1/opportunities", json={**body, "title": f"Deal {i}"}, headers=admin)
        assert r.status_code == 201, r.text
    await sign_in(gw)
    board = await gw.get("/app/pipeline")
    assert board.text.count('class="kcard"') == 20
    assert 'href="/app/pipeline?cards=50"' in board.text
    more = await gw.get("/app/pipeline", params={"cards": "50"})
    assert more.text.count('class="kcard"') == 21 and "?cards=100" not in more.text
    # An htmx refresh (after a win or a drag) keeps the page's number of cards.
    refresh = await gw.get(
        "/app/pipeline", headers={"HX-Request": "true", "HX-Current-URL": "http://x/app/pipeline?cards=50"}
    )
    assert refresh.text.count('class="kcard"') == 21 and "<html" not in refresh.text
    odd = await gw.get("/app/pipeline", params={"cards": "7"})
    assert odd.text.count('class="kcard"') == 20  # only the offered steps


async def test_a_ticket_is_opened_from_the_customer_page(gw):
    admin = await login(gw)
    customer = await gw.post(
        "/api/v1/customers", json={"lastName": "Caller", "email": "caller@example.com"}, headers=admin
    )
    await sign_in(gw)
    page = await gw.get(f"/app/customers/{customer.json()['id']}")
    url = f"/app/customers/{customer.json()['id']}/tickets"
    form = {"csrf": csrf_in(page.text), "description": "It beeps.", "type": "PROBLEM", "priority": "HIGH"}
    refused = await gw.post(url, data={**form, "subject": ""})
    assert refused.status_code == 422 and 'class="message error"' in refused.text
    assert "It beeps." in refused.text  # the form keeps what was typed
    opened = await gw.post(url, data={**form, "subject": "Beeping"})
    assert opened.status_code == 303 and opened.headers["location"].startswith("/app/tickets/")
    ticket = await gw.get(opened.headers["location"])
    assert "Beeping" in ticket.text and "It beeps." in ticket.text


async def test_a_campaign_is_created_with_its_dates_in_the_users_zone_and_refusals_shown(gw):
    admin = await login(gw)
    await _in_time_zone(gw, admin, "Asia/Shanghai")
    await sign_in(gw)
    page = await gw.get("/app/campaigns")
    form = {
        "csrf": csrf_in(page.text),
        "name": "Launch",
        "type": "WEBINAR",
        "budget": "250.00",
        "currency": "EUR",
    }
    backwards = await gw.post(
        "/app/campaigns", data={**form, "startDate": "2027-03-10", "endDate": "2027-03-01"}
    )
    assert backwards.status_code == 422 and 'class="message error"' in backwards.text
    assert 'value="Launch"' in backwards.text
    created = await gw.post(
        "/app/campaigns", data={**form, "startDate": "2027-03-01", "endDate": "2027-03-10"}
    )
    assert created.status_code == 303
    campaign_id = created.headers["location"].rsplit("/", 1)[-1]
    stored = (await gw.get(f"/api/v1/campaigns/{campaign_id}", headers=admin)).json()
    start = datetime.fromisoformat(stored["startDate"].replace("Z", "+00:00"))
    assert start == datetime(2027, 2, 28, 16, 0, tzinfo=UTC)  # midnight in Shanghai
    assert (stored["budget"], stored["currency"], stored["type"]) == ("250.00", "EUR", "WEBINAR")
