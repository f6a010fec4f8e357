"""activity-svc records one system note per business event, whatever the bus does: duplicates,
any delivery order, merges. Subjects and descriptions follow the seed's wording."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from activity_svc.service import notes as notes_service
from activity_svc.service import reactions
from crm_common.contracts.campaign import CampaignMemberConverted, CampaignTargetAdded
from crm_common.contracts.customer import (
    CustomerAssigned,
    CustomerConverted,
    CustomerMerged,
    CustomerUpdated,
)
from crm_common.contracts.pipeline import (
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
)
from crm_common.contracts.ticket import TicketClosed, TicketCreated, TicketEscalated, TicketResolved
from crm_common.events import dead_letters
from crm_common.events.envelope import event_from, new_event
from crm_common.testing import plugin as shared

from .conftest import add_user, deliver, outbox_payloads

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def event(payload, subject, *, sequence=1, at=None):
    e = event_from(payload, service=payload.event_type.split(".")[0], subject=subject, sequence=sequence)
    return e.model_copy(update={"time": at}) if at else e


def customer_created(customer_id=None, creator=None, *, number="CUST-2026-000007", sequence=1, at=None, **o):
    e = shared.customer_created_event(
        customer_id,
        name=o.pop("full_name", "Acme Ltd"),
        number=number,
        type=o.pop("type", "COMPANY"),
        status="LEAD",
        email="hq@acme.example",
        sequence=sequence,
        created_by=creator,
    )
    return e.model_copy(update={"time": at}) if at else e


def opportunity(cls, customer_id, opportunity_id, *, sequence=1, at=None, **extra):
    payload = cls(
        opportunity_id=opportunity_id,
        customer_id=customer_id,
        title="Fleet renewal",
        status=extra.pop("status", "OPEN"),
        amount=Decimal("1250.00"),
        currency="EUR",
        probability=25,
        stage_id=uuid.uuid4(),
        stage_name=extra.pop("stage_name", "Qualification"),
        owner_id=uuid.uuid4(),
        **extra,
    )
    return event(payload, opportunity_id, sequence=sequence, at=at)


def ticket(cls, customer_id, ticket_id, *, at=None, **extra):
    payload = cls(
        ticket_id=ticket_id,
        ticket_number="TCK-2026-000042",
        subject="Printer on fire",
        customer_id=customer_id,
        status=extra.pop("status", "OPEN"),
        priority="HIGH",
        **extra,
    )
    return event(payload, ticket_id, at=at)


def merged(primary, secondary, *, by=None, sequence=5, names=("Acme Ltd", "Acme Limited")):
    payload = CustomerMerged(
        primary_customer_id=primary,
        secondary_customer_id=secondary,
        primary_customer_number="CUST-2026-000001",
        secondary_customer_number="CUST-2026-000002",
        primary_full_name=names[0],
        secondary_full_name=names[1],
        merged_by=by,
    )
    return event(payload, primary, sequence=sequence)


async def notes(client, headers, customer_id):
    r = await client.get("/api/v1/activities", params={"customerId": str(customer_id)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def timeline(client, headers, kind, ident):
    r = await client.get(f"/api/v1/{kind}/{ident}/timeline", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# --- the slice's tests (customer.created) ------------------------------------------------------------


async def test_customer_created_records_one_system_note_in_the_seed_wording(client, bus, auth_headers):
    creator = uuid.uuid4()
    event = customer_created(creator=creator)
    assert await bus.publish([event], timeout=5) == [None]
    page = await notes(client, auth_headers("read_only"), event.data["customerId"])
    assert page["total"] == 1
    (note,) = page["items"]
    assert note["type"] == "NOTE"
    assert note["subject"] == "Customer created"
    assert note["description"] == "New company customer created: Acme Ltd"
    assert note["status"] == "COMPLETED"
    assert note["system"] is True
    assert note["sourceEventId"] == str(event.id)
    assert note["ownerId"] == str(creator)
    assert note["customerId"] == event.data["customerId"]
    assert note["customerName"] == "Acme Ltd"
    assert note["startDate"].startswith(event.time.strftime("%Y-%m-%dT%H:%M"))


async def test_a_redelivered_event_records_no_second_note(client, bus, auth_headers):
    event = customer_created()
    for _ in range(3):
        assert await bus.publish([event], timeout=5) == [None]
    assert (await notes(client, auth_headers(), event.data["customerId"]))["total"] == 1


async def test_notes_are_kept_per_customer_and_the_filter_applies(client, bus, auth_headers):
    a, b = customer_created(), customer_created(type="INDIVIDUAL", full_name="Bo Li")
    await bus.publish([a, b], timeout=5)
    page = await notes(client, auth_headers(), b.data["customerId"])
    assert [n["description"] for n in page["items"]] == ["New individual customer created: Bo Li"]
    everything = (await client.get("/api/v1/activities", headers=auth_headers())).json()
    assert everything["total"] == 2
    only_calls = (
        await client.get("/api/v1/activities", params={"type": "CALL"}, headers=auth_headers())
    ).json()
    assert only_calls["total"] == 0


async def test_a_malformed_event_changes_nothing(client, bus, auth_headers):
    broken = new_event("customer.created", service="customer", subject="x", data={"customerId": "not-a-uuid"})
    # A contract violation is permanent: recorded as a dead letter at once, not retried.
    assert await bus.publish([broken], timeout=5) == [None]
    (letter,) = await dead_letters.stored(client.app.state.runtime.db)
    assert letter.event_id == broken.id and letter.attempts == 1
    assert letter.error.startswith("PermanentEventError")
    assert (await client.get("/api/v1/activities", headers=auth_headers())).json()["total"] == 0


async def test_listing_needs_activity_access_and_valid_filters(client, auth_headers):
    assert (await client.get("/api/v1/activities")).status_code == 401
    assert (await client.get("/api/v1/activities", headers=auth_headers("nobody"))).status_code == 403
    bad = await client.get("/api/v1/activities", params={"type": "PARTY"}, headers=auth_headers())
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


# --- one note per event type -------------------------------------------------------------------------

CUST, OPP, TCK, ACTOR, CAMPAIGN = (uuid.UUID(int=n) for n in (101, 102, 103, 104, 105))


def _every_event():
    """(event, subject, description, outcome, opportunity?, ticket?) for every event with a note."""
    close = date(2026, 11, 20)
    return [
        (
            event(
                CustomerConverted(
                    customer_id=CUST,
                    customer_number="CUST-2026-000101",
                    full_name="Ada Lovelace",
                    previous_status="LEAD",
                    status="CUSTOMER",
                    converted_by=ACTOR,
                ),
                CUST,
                sequence=2,
            ),
            "Lead converted to customer",
            "Lead Ada Lovelace has been converted to a customer",
            None,
            None,
            None,
        ),
        (
            event(
                CustomerAssigned(
                    customer_id=CUST,
                    customer_number="CUST-2026-000101",
                    full_name="Ada Lovelace",
                    assigned_to_id=None,
                    assigned_by=ACTOR,
                ),
                CUST,
                sequence=3,
            ),
            "Customer assigned",
            "Customer Ada Lovelace assigned to nobody",
            None,
            None,
            None,
        ),
        (
            opportunity(OpportunityCreated, CUST, OPP, created_by=ACTOR),
            "Opportunity created",
            "New opportunity created: Fleet renewal - 1250.00 EUR",
            None,
            OPP,
            None,
        ),
        (
            opportunity(
                OpportunityStageChanged,
                CUST,
                OPP,
                stage_name="Proposal",
                from_stage_id=uuid.uuid4(),
                from_stage_name="Qualification",
                changed_by=ACTOR,
            ),
            "Stage updated",
            'Opportunity moved from "Qualification" to "Proposal"',
            None,
            OPP,
            None,
        ),
        (
            opportunity(OpportunityWon, CUST, OPP, status="WON", close_date=close, won_by=ACTOR),
            "Opportunity won",
            "Opportunity won! Amount: 1250.00 EUR",
            "Won: 1250.00 EUR",
            OPP,
            None,
        ),
        (
            opportunity(
                OpportunityLost, CUST, OPP, status="LOST", close_date=close, reason="Price", lost_by=ACTOR
            ),
            "Opportunity lost",
            "Opportunity lost: Price",
            "Lost: Price",
            OPP,
            None,
        ),
        (
            ticket(TicketCreated, CUST, TCK, type="INCIDENT", created_by=ACTOR),
            "Ticket created",
            "Ticket TCK-2026-000042 created: Printer on fire",
            None,
            None,
            TCK,
        ),
        (
            ticket(TicketEscalated, CUST, TCK, escalation_level=2, reason="SLA breached", escalated_by=ACTOR),
            "Ticket escalated",
            "Ticket TCK-2026-000042 escalated to level 2: SLA breached",
            None,
            None,
            TCK,
        ),
        (
            ticket(
                TicketResolved,
                CUST,
                TCK,
                status="RESOLVED",
                resolution="Replaced the fuser",
                resolved_at=T0,
                resolved_by=ACTOR,
            ),
            "Ticket resolved",
            "Ticket TCK-2026-000042 resolved: Replaced the fuser",
            "Resolved: Replaced the fuser",
            None,
            TCK,
        ),
        (
            ticket(TicketClosed, CUST, TCK, status="CLOSED", closed_at=T0, closed_by=ACTOR),
            "Ticket closed",
            "Ticket TCK-2026-000042 closed",
            None,
            None,
            TCK,
        ),
    ]


@pytest.mark.parametrize("case", range(len(_every_event())), ids=[c[1] for c in _every_event()])
async def test_every_event_type_records_its_note_once(client, auth_headers, case):
    ev, subject, description, outcome, opp, tck = _every_event()[case]
    await deliver(client, ev)
    await deliver(client, ev)  # a duplicate
    page = await notes(client, auth_headers(), CUST)
    assert page["total"] == 1
    (note,) = page["items"]
    assert (note["subject"], note["description"], note["outcome"]) == (subject, description, outcome)
    assert note["type"] == "NOTE" and note["status"] == "COMPLETED" and note["system"] is True
    assert note["ownerId"] == str(ACTOR) and note["sourceEventId"] == str(ev.id)
    assert note["opportunityId"] == (str(opp) if opp else None)
    assert note["ticketId"] == (str(tck) if tck else None)
    if opp:
        assert (await timeline(client, auth_headers(), "opportunities", opp))["total"] == 1
    if tck:
        assert (await timeline(client, auth_headers(), "tickets", tck))["total"] == 1


async def test_campaign_membership_notes_carry_no_actor(client, auth_headers):
    added = event(
        CampaignTargetAdded(campaign_id=CAMPAIGN, campaign_name="Spring Promo", customer_id=CUST), CAMPAIGN
    )
    converted = event(
        CampaignMemberConverted(
            campaign_id=CAMPAIGN, campaign_name="Spring Promo", customer_id=CUST, opportunity_id=OPP
        ),
        CAMPAIGN,
    )
    await deliver(client, added, converted, added)
    items = (await timeline(client, auth_headers(), "customers", CUST))["items"]
    assert sorted((n["subject"], n["description"]) for n in items) == [
        ("Added to campaign", "Customer added to campaign: Spring Promo"),
        ("Campaign conversion", "Opportunity won from campaign: Spring Promo"),
    ]
    assert {(n["ownerId"], n["ownerName"]) for n in items} == {(str(uuid.UUID(int=0)), "System")}


async def test_an_assignment_names_the_user_and_team_from_the_directory(client, auth_headers):
    rep = await add_user(client, "Rita Rep")
    team = uuid.uuid4()
    await deliver(client, shared.team_event(team, name="EMEA Sales"))
    assigned = CustomerAssigned(
        customer_id=CUST,
        customer_number="CUST-2026-000101",
        full_name="Ada Lovelace",
        assigned_to_id=rep,
        team_id=team,
    )
    await deliver(client, event(assigned, CUST, sequence=2))
    (note,) = (await notes(client, auth_headers(), CUST))["items"]
    assert note["description"] == "Customer Ada Lovelace assigned to Rita Rep (team EMEA Sales)"


# --- order ------------------------------------------------------------------------------------------


async def test_out_of_order_delivery_gives_the_same_timeline(client, auth_headers):
    customer, opp = uuid.uuid4(), uuid.uuid4()
    created = opportunity(OpportunityCreated, customer, opp, at=T0)
    moved = opportunity(
        OpportunityStageChanged,
        customer,
        opp,
        sequence=2,
        at=T0 + timedelta(hours=1),
        stage_name="Proposal",
        from_stage_id=uuid.uuid4(),
        from_stage_name="Qualification",
    )
    won = opportunity(
        OpportunityWon,
        customer,
        opp,
        sequence=3,
        at=T0 + timedelta(hours=2),
        status="WON",
        close_date=date(2026, 11, 2),
    )
    await deliver(client, won)
    await deliver(client, moved)
    await deliver(client, created)
    await deliver(client, moved)
    page = await timeline(client, auth_headers(), "opportunities", opp)
    assert [n["subject"] for n in page["items"]] == [
        "Opportunity won",
        "Stage updated",
        "Opportunity created",
    ]
    assert page["items"][2]["startDate"].startswith("2026-11-02T09:00:00")
    assert (await timeline(client, auth_headers(), "customers", customer))["total"] == 3


async def test_customer_names_follow_the_newest_event_in_any_order(client, auth_headers):
    cid = uuid.uuid4()
    renamed = CustomerUpdated(
        customer_id=cid,
        customer_number="CUST-2026-000009",
        full_name="Acme Group",
        status="LEAD",
        changes={"companyName": "Acme Group"},
    )
    await deliver(client, event(renamed, cid, sequence=2))
    await deliver(client, customer_created(cid, full_name="Acme Ltd", sequence=1))
    (note,) = (await notes(client, auth_headers(), cid))["items"]
    assert note["description"] == "New company customer created: Acme Ltd"  # what happened then
    assert note["customerName"] == "Acme Group"  # what it is called now


# --- merges -----------------------------------------------------------------------------------------


async def test_a_merge_re_points_every_activity_of_the_secondary(client, auth_headers):
    primary, secondary, merger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(
        client,
        customer_created(primary, number="CUST-2026-000001"),
        customer_created(secondary, number="CUST-2026-000002", full_name="Acme Limited"),
        ticket(TicketCreated, secondary, uuid.uuid4(), type="QUESTION"),
    )
    call = await client.post(
        "/api/v1/activities",
        json={
            "type": "CALL",
            "subject": "Call",
            "startDate": "2026-11-01T10:00:00Z",
            "customerId": str(secondary),
        },
        headers=auth_headers(),
    )
    assert call.status_code == 201
    await deliver(client, merged(primary, secondary, by=merger))

    assert (await timeline(client, auth_headers(), "customers", secondary))["total"] == 0
    items = (await timeline(client, auth_headers(), "customers", primary))["items"]
    assert sorted(n["subject"] for n in items) == [
        "Call",
        "Customer created",
        "Customer created",
        "Customer merge completed",
        "Ticket created",
    ]
    note = next(n for n in items if n["subject"] == "Customer merge completed")
    assert note["description"] == (
        "Customer Acme Limited (CUST-2026-000002) merged into Acme Ltd (CUST-2026-000001)"
    )
    assert note["ownerId"] == str(merger)
    moved = next(n for n in items if n["subject"] == "Call")
    assert moved["version"] == 2 and moved["customerName"] == "Acme Ltd"
    # Each activity moved (the call and the secondary's two notes) is published as activity.repointed.
    repointed = [e for e in await outbox_payloads(client) if e["type"] == "crm.activity.repointed"]
    by_id = {n["id"]: n for n in items}
    assert sorted(by_id[e["subject"]]["subject"] for e in repointed) == [
        "Call",
        "Customer created",
        "Ticket created",
    ]
    assert {(e["data"]["fromCustomerId"], e["data"]["customerId"], e["sequence"]) for e in repointed} == {
        (str(secondary), str(primary), 2)
    }

    # Late news about the secondary, and new activities for it, land on the primary too.
    await deliver(client, ticket(TicketClosed, secondary, uuid.uuid4(), status="CLOSED", closed_at=T0))
    again = await client.post(
        "/api/v1/activities",
        json={
            "type": "NOTE",
            "subject": "Later",
            "startDate": "2026-11-03T10:00:00Z",
            "customerId": str(secondary),
        },
        headers=auth_headers(),
    )
    assert again.json()["customerId"] == str(primary)
    assert (await timeline(client, auth_headers(), "customers", primary))["total"] == 7
    assert (await timeline(client, auth_headers(), "customers", secondary))["total"] == 0


async def test_a_merge_before_the_secondary_was_known_still_moves_its_notes(client, auth_headers):
    primary, secondary = uuid.uuid4(), uuid.uuid4()
    await deliver(client, merged(primary, secondary))
    await deliver(client, customer_created(secondary, full_name="Acme Limited"))
    assert (await timeline(client, auth_headers(), "customers", secondary))["total"] == 0
    subjects = [n["subject"] for n in (await timeline(client, auth_headers(), "customers", primary))["items"]]
    assert sorted(subjects) == ["Customer created", "Customer merge completed"]


@pytest.mark.parametrize("order", ["in order", "reversed"])
async def test_chained_merges_end_on_the_last_primary(client, auth_headers, order):
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await deliver(client, customer_created(c, full_name="C"), customer_created(b, full_name="B"))
    merges = [merged(b, c, names=("B", "C")), merged(a, b, names=("A", "B"))]
    for m in merges if order == "in order" else reversed(merges):
        await deliver(client, m)
    for gone in (b, c):
        assert (await timeline(client, auth_headers(), "customers", gone))["total"] == 0
    assert (await timeline(client, auth_headers(), "customers", a))["total"] == 4


async def test_system_notes_cannot_be_changed_or_deleted(client, auth_headers):
    ev = customer_created()
    await deliver(client, ev)
    (note,) = (await notes(client, auth_headers(), ev.data["customerId"]))["items"]
    url = f"/api/v1/activities/{note['id']}"
    for method, path, body in (
        ("PATCH", url, {"subject": "x", "version": 1}),
        ("DELETE", url, None),
        ("POST", f"{url}/complete", None),
        ("POST", f"{url}/cancel", None),
        ("POST", f"{url}/start", None),
    ):
        r = await client.request(method, path, json=body, headers=auth_headers())
        assert r.status_code == 409 and r.json()["code"] == "SYSTEM_ACTIVITY_READ_ONLY", (method, path)
    assert (await client.get(url, headers=auth_headers())).json() == note


@pytest.mark.parametrize("database", ["postgres"], indirect=True)  # SQLite writers are serial: no race
@pytest.mark.parametrize("first", ["note", "merge"])
async def test_a_note_racing_a_merge_still_ends_on_the_primary(client, auth_headers, database, first):
    db = client.app.state.runtime.db
    primary, secondary = uuid.uuid4(), uuid.uuid4()
    merge_event = merged(primary, secondary)
    late_ticket = ticket(TicketCreated, secondary, uuid.uuid4(), type="QUESTION")
    # Both known already, so no insert of theirs serializes the two transactions by chance.
    await deliver(client, customer_created(primary), customer_created(secondary))
    async with db.transaction() as session:
        # One side runs in a transaction held open here; the other is delivered meanwhile.
        if first == "note":
            await notes_service.record_system_note(
                session,
                source_event_id=uuid.uuid4(),
                subject="Racing note",
                description="",
                at=T0,
                owner_id=ACTOR,
                customer_id=secondary,
            )
            other = asyncio.create_task(deliver(client, merge_event))
        else:
            await reactions.on_customer_merged(session, merge_event)
            other = asyncio.create_task(deliver(client, late_ticket))
        await asyncio.sleep(0.3)
        assert not other.done()  # it waits for the lock this transaction holds
    await other
    assert (await timeline(client, auth_headers(), "customers", secondary))["total"] == 0
    assert (await timeline(client, auth_headers(), "customers", primary))["total"] >= 1
