"""update_stage with real requirements, win (with its draft invoice) and lose."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.testing.plugin import admitted, count_rows, outbox_payloads
from pipeline_svc.models import Invoice


@pytest.fixture
def move(client, auth_headers):
    async def go(opportunity: dict | str, stage: dict, **extra):
        oid = opportunity if isinstance(opportunity, str) else opportunity["id"]
        return await client.post(
            f"/api/v1/opportunities/{oid}/stage",
            json={"stageId": stage["id"], **extra},
            headers=auth_headers("sales_rep"),
        )

    return go


@pytest.fixture
def set_requirements(client, auth_headers, stages):
    async def go(name: str, requirements: list[str]):
        stage = (await stages())[name]
        r = await client.patch(
            f"/api/v1/stages/{stage['id']}",
            json={"requirements": requirements, "version": stage["version"]},
            headers=auth_headers(),
        )
        assert r.status_code == 200, r.text
        return r.json()

    return go


async def test_moving_to_the_next_stage_takes_its_probability_and_publishes(
    client, auth_headers, stages, move, new_opportunity
):
    o = await new_opportunity(amount="500.00")
    s = await stages()
    r = await move(o, s["Qualification"])
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["stageId"] == s["Qualification"]["id"] and moved["stageName"] == "Qualification"
    assert moved["probability"] == 25 and moved["version"] == 2 and r.headers["etag"] == 'W/"2"'
    (event,) = await outbox_payloads(client, "opportunity.stage_changed")
    assert event["sequence"] == 2
    data = event["data"]
    assert data["fromStageName"] == "Prospecting" and data["fromStageId"] == s["Prospecting"]["id"]
    assert data["stageName"] == "Qualification" and data["probability"] == 25
    assert data["amount"] == "500.00" and data["status"] == "OPEN"


async def test_moving_to_the_current_stage_changes_nothing(client, stages, move, new_opportunity):
    o = await new_opportunity()
    r = await move(o, (await stages())["Prospecting"])
    assert r.status_code == 200 and r.json()["version"] == 1
    assert await outbox_payloads(client, "opportunity.stage_changed") == []


async def test_leaving_a_stage_needs_its_requirements_met(
    client, auth_headers, stages, move, set_requirements, new_opportunity, new_product
):
    await set_requirements(
        "Prospecting", ["amount", "expectedCloseDate", "customFields.decisionMaker", "products"]
    )
    o = await new_opportunity(customFields={"decisionMaker": "  "})
    s = await stages()
    r = await move(o, s["Qualification"])
    assert r.status_code == 422
    problem = r.json()
    assert problem["code"] == "INVALID_STAGE_TRANSITION"
    assert {e["field"] for e in problem["errors"]} == {
        "amount",
        "expectedCloseDate",
        "customFields.decisionMaker",
        "products",
    }
    assert all(e["code"] == "requirement_unmet" for e in problem["errors"])
    assert [u["requirement"] for u in problem["unmetRequirements"]] == [
        "amount",
        "expectedCloseDate",
        "customFields.decisionMaker",
        "products",
    ]
    assert {u["stageName"] for u in problem["unmetRequirements"]} == {"Prospecting"}
    assert (await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers())).json()[
        "version"
    ] == 1

    # Meet them one by one: a line item gives both products and (computed) amount.
    product = await new_product(price="40.00")
    r = await client.post(
        f"/api/v1/opportunities/{o['id']}/products",
        json={"productId": product["id"], "quantity": 2},
        headers=auth_headers(),
    )
    assert r.status_code == 201 and r.json()["amount"] == "80.00"
    r = await move(o, s["Qualification"])
    assert {e["field"] for e in r.json()["errors"]} == {"expectedCloseDate", "customFields.decisionMaker"}
    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}",
        json={"expectedCloseDate": "2026-06-30", "customFields": {"decisionMaker": "Ada"}, "version": 2},
        headers=auth_headers(),
    )
    assert r.status_code == 200, r.text
    r = await move(o, s["Qualification"])
    assert r.status_code == 200, r.text
    assert len(await outbox_payloads(client, "opportunity.stage_changed")) == 1


async def test_skipping_a_stage_with_requirements_is_refused(stages, move, set_requirements, new_opportunity):
    await set_requirements("Qualification", ["teamId"])
    await set_requirements("Proposal", ["competitors"])
    o = await new_opportunity()
    s = await stages()
    r = await move(o, s["Negotiation"])
    assert r.status_code == 422 and r.json()["code"] == "INVALID_STAGE_TRANSITION"
    errors = r.json()["errors"]
    assert [e["code"] for e in errors] == ["stage_skipped", "stage_skipped"]
    assert "Qualification" in errors[0]["message"] and "Proposal" in errors[1]["message"]
    assert [(u["stageName"], u["requirement"]) for u in r.json()["unmetRequirements"]] == [
        ("Qualification", "teamId"),
        ("Proposal", "competitors"),
    ]
    # Skipping stages without requirements is fine.
    r = await move(o, s["Qualification"])
    assert r.status_code == 200


async def test_skipping_stages_without_requirements_and_moving_back_are_allowed(
    stages, move, set_requirements, new_opportunity
):
    o = await new_opportunity()
    s = await stages()
    r = await move(o, s["Negotiation"])
    assert r.status_code == 200 and r.json()["probability"] == 75
    # Requirements are exit criteria for moving forward: moving back is always possible.
    await set_requirements("Negotiation", ["description"])
    r = await move(o, s["Qualification"])
    assert r.status_code == 200 and r.json()["probability"] == 25


async def test_an_inactive_target_stage_is_refused(client, auth_headers, stages, move, new_opportunity):
    o = await new_opportunity()
    s = await stages()
    proposal = s["Proposal"]
    await client.patch(
        f"/api/v1/stages/{proposal['id']}", json={"isActive": False, "version": 1}, headers=auth_headers()
    )
    r = await move(o, proposal)
    assert r.status_code == 422 and r.json()["code"] == "INVALID_STAGE_TRANSITION"
    assert r.json()["errors"][0]["code"] == "stage_inactive"


async def test_won_and_lost_stages_are_reached_through_win_and_lose(stages, move, new_opportunity):
    o = await new_opportunity()
    s = await stages()
    for name, verb in (("Closed Won", "win"), ("Closed Lost", "lose")):
        r = await move(o, s[name])
        assert r.status_code == 422 and r.json()["code"] == "INVALID_STAGE_TRANSITION"
        assert r.json()["errors"][0]["code"] == "closing_stage" and verb in r.json()["errors"][0]["message"]


async def test_unknown_stage_and_unknown_opportunity(client, auth_headers, stages, move, new_opportunity):
    o = await new_opportunity()
    r = await move(o, {"id": str(uuid.uuid4())})
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_STAGE"
    r = await move(str(uuid.uuid4()), (await stages())["Proposal"])
    assert r.status_code == 404 and r.json()["code"] == "OPPORTUNITY_NOT_FOUND"
    r = await client.post(f"/api/v1/opportunities/{o['id']}/stage", json={}, headers=auth_headers())
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "stageId"


async def test_a_stale_version_on_an_action_is_a_412(stages, move, new_opportunity):
    o = await new_opportunity()
    r = await move(o, (await stages())["Proposal"], version=7)
    assert r.status_code == 412


async def test_win_closes_and_creates_a_draft_invoice_from_the_amount(
    client, auth_headers, stages, new_opportunity
):
    user = uuid.uuid4()
    o = await new_opportunity(amount="999.99", currency="GBP", title="Annual licence")
    r = await client.post(
        f"/api/v1/opportunities/{o['id']}/win", headers=auth_headers("sales_rep", user_id=user)
    )
    assert r.status_code == 200, r.text
    won, invoice = r.json()["opportunity"], r.json()["invoice"]
    today = datetime.now(UTC).date()
    assert won["status"] == "WON" and won["stageName"] == "Closed Won" and won["probability"] == 100
    assert won["actualCloseDate"] == today.isoformat() and won["version"] == 2
    year = today.year
    assert invoice["invoiceNumber"] == f"INV-{year}-000001" and invoice["status"] == "DRAFT"
    assert invoice["customerId"] == o["customerId"] and invoice["opportunityId"] == o["id"]
    assert invoice["total"] == "999.99" and invoice["currency"] == "GBP"
    assert invoice["dueDate"] == (today + timedelta(days=30)).isoformat()
    assert [
        (li["description"], li["quantity"], li["unitPrice"], li["lineTotal"]) for li in invoice["lines"]
    ] == [("Annual licence", "1.00", "999.99", "999.99")]
    (event,) = await outbox_payloads(client, "opportunity.won")
    assert event["sequence"] == 2
    assert event["data"]["amount"] == "999.99" and event["data"]["currency"] == "GBP"
    assert event["data"]["customerId"] == o["customerId"] and event["data"]["closeDate"] == today.isoformat()
    assert event["data"]["status"] == "WON" and event["data"]["wonBy"] == str(user)
    (created,) = await outbox_payloads(client, "invoice.created")
    assert created["data"]["invoiceNumber"] == invoice["invoiceNumber"]
    assert created["data"]["total"] == "999.99" and created["data"]["status"] == "DRAFT"
    assert created["subject"] == invoice["id"]


async def test_win_invoices_the_line_items_and_an_adjustment_for_a_hand_set_amount(
    client, auth_headers, new_opportunity, new_product
):
    o = await new_opportunity()
    a, b = await new_product(name="Seat", price="10.00"), await new_product(name="Setup", price="250.00")
    h = auth_headers()
    await client.post(
        f"/api/v1/opportunities/{o['id']}/products",
        json={"productId": a["id"], "quantity": "12", "discount": "10"},
        headers=h,
    )
    await client.post(f"/api/v1/opportunities/{o['id']}/products", json={"productId": b["id"]}, headers=h)
    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}", json={"amount": "350.00", "version": 3}, headers=h
    )
    assert r.json()["amount"] == "350.00" and r.json()["amountManual"] is True
    invoice = (await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=h)).json()["invoice"]
    lines = [(li["description"], li["lineTotal"]) for li in invoice["lines"]]
    # 12 x 10.00 - 10% = 108.00; 250.00; the agreed 350.00 is 8.00 less.
    assert lines == [("Seat", "108.00"), ("Setup", "250.00"), ("Adjustment to the agreed amount", "-8.00")]
    assert invoice["total"] == "350.00"


async def test_only_open_opportunities_can_be_won_or_lost(
    client, auth_headers, stages, move, new_opportunity
):
    o = await new_opportunity(amount="10")
    h = auth_headers()
    assert (await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=h)).status_code == 200
    again = await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "OPPORTUNITY_NOT_OPEN"
    lose = await client.post(f"/api/v1/opportunities/{o['id']}/lose", json={"lostReason": "x"}, headers=h)
    assert lose.status_code == 409 and lose.json()["code"] == "OPPORTUNITY_NOT_OPEN"
    r = await move(o, (await stages())["Proposal"])
    assert r.status_code == 422 and r.json()["code"] == "INVALID_STAGE_TRANSITION"
    assert r.json()["errors"][0]["code"] == "not_open"
    assert await count_rows(client, Invoice) == 1
    # Money and probability of a closed opportunity are frozen; notes are not.
    r = await client.patch(f"/api/v1/opportunities/{o['id']}", json={"amount": "20", "version": 2}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "OPPORTUNITY_NOT_OPEN"
    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}", json={"description": "paid upfront", "version": 2}, headers=h
    )
    assert r.status_code == 200


async def test_concurrent_wins_of_one_opportunity_exactly_one_succeeds(client, auth_headers, new_opportunity):
    o = await new_opportunity(amount="10")
    h = auth_headers()
    # Each a client honouring 503 OVERLOADED's Retry-After: exactly one of the final answers wins.
    responses = await asyncio.gather(
        *(admitted(lambda: client.post(f"/api/v1/opportunities/{o['id']}/win", headers=h)) for _ in range(5))
    )
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409, 409]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"OPPORTUNITY_NOT_OPEN"}
    assert await count_rows(client, Invoice) == 1


async def test_lose_needs_a_reason_and_goes_to_the_lost_stage(client, auth_headers, new_opportunity):
    o = await new_opportunity(amount="70")
    url = f"/api/v1/opportunities/{o['id']}/lose"
    h = auth_headers()
    for body in ({}, {"lostReason": ""}, {"lostReason": "   "}, {"lostReason": "x" * 501}):
        r = await client.post(url, json=body, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lostReason", r.text
    r = await client.post(url, json={"lostReason": "Price too high"}, headers=h)
    assert r.status_code == 200
    lost = r.json()
    assert lost["status"] == "LOST" and lost["stageName"] == "Closed Lost" and lost["probability"] == 0
    assert lost["lostReason"] == "Price too high" and lost["actualCloseDate"] is not None
    (event,) = await outbox_payloads(client, "opportunity.lost")
    assert event["data"]["reason"] == "Price too high" and event["data"]["status"] == "LOST"
    assert event["sequence"] == 2
    assert await outbox_payloads(client, "invoice.created") == []


async def test_without_a_won_stage_win_is_refused(client, auth_headers, stages, new_opportunity):
    o = await new_opportunity()
    won = (await stages())["Closed Won"]
    await client.patch(
        f"/api/v1/stages/{won['id']}", json={"isActive": False, "version": 1}, headers=auth_headers()
    )
    r = await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=auth_headers())
    assert r.status_code == 409 and r.json()["code"] == "NO_WON_STAGE"
    assert (await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers())).json()[
        "status"
    ] == "OPEN"
    assert await count_rows(client, Invoice) == 0


async def test_without_a_lost_stage_lose_is_refused(client, auth_headers, stages, new_opportunity):
    o = await new_opportunity()
    lost = (await stages())["Closed Lost"]
    await client.patch(
        f"/api/v1/stages/{lost['id']}", json={"isActive": False, "version": 1}, headers=auth_headers()
    )
    r = await client.post(
        f"/api/v1/opportunities/{o['id']}/lose", json={"lostReason": "price"}, headers=auth_headers()
    )
    assert r.status_code == 409 and r.json()["code"] == "NO_LOST_STAGE"
    got = (await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers())).json()
    assert (got["status"], got["lostReason"], got["version"]) == ("OPEN", None, 1)


async def test_a_retried_win_with_an_idempotency_key_creates_one_invoice(
    client, auth_headers, new_opportunity
):
    o = await new_opportunity(amount="10")
    headers = {**auth_headers(), "Idempotency-Key": f"win-{o['id']}"}
    first = await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=headers)
    again = await client.post(f"/api/v1/opportunities/{o['id']}/win", headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert await count_rows(client, Invoice) == 1
