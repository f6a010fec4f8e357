"""Creating, reading, editing and listing opportunities, and every bad input."""

import uuid

from crm_common.testing.plugin import count_rows, outbox_payloads
from pipeline_svc.models import Opportunity


async def test_create_starts_in_the_first_active_stage_with_its_probability(
    client, auth_headers, new_customer
):
    user = uuid.uuid4()
    customer = await new_customer("Acme Ltd")
    body = {
        "title": "Acme roll-out",
        "customerId": str(customer),
        "amount": "1250.50",
        "currency": "EUR",
        "expectedCloseDate": "2026-12-31",
        "competitors": ["Globex"],
        "customFields": {"decisionMaker": "Wile E."},
    }
    r = await client.post(
        "/api/v1/opportunities",
        json=body,
        headers={**auth_headers("sales_rep", user_id=user), "X-Request-ID": "req-7"},
    )
    assert r.status_code == 201, r.text
    o = r.json()
    assert r.headers["location"] == f"/api/v1/opportunities/{o['id']}"
    assert r.headers["etag"] == 'W/"1"'
    assert o["status"] == "OPEN"
    assert o["stageName"] == "Prospecting" and o["probability"] == 10
    assert o["amount"] == "1250.50" and o["amountManual"] is True and o["currency"] == "EUR"
    assert o["ownerId"] == str(user)  # defaults to the caller
    assert o["customerName"] == "Acme Ltd"
    assert o["expectedCloseDate"] == "2026-12-31" and o["actualCloseDate"] is None
    assert o["lineItems"] == [] and o["version"] == 1 and o["createdById"] == str(user)

    got = await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers("sales_rep"))
    assert got.status_code == 200 and got.json() == o and got.headers["etag"] == 'W/"1"'

    (event,) = await outbox_payloads(client, "opportunity.created")
    assert event["type"] == "crm.opportunity.created" and event["source"] == "/crm/pipeline"
    assert event["subject"] == o["id"] and event["sequence"] == 1 and event["correlationid"] == "req-7"
    data = event["data"]
    assert data["opportunityId"] == o["id"] and data["customerId"] == str(customer)
    assert data["amount"] == "1250.50" and data["currency"] == "EUR" and data["status"] == "OPEN"
    assert data["stageName"] == "Prospecting" and data["probability"] == 10
    assert data["ownerId"] == str(user) and data["createdBy"] == str(user)


async def test_amount_defaults_to_zero_following_the_line_items(new_opportunity):
    o = await new_opportunity()
    assert o["amount"] == "0.00" and o["amountManual"] is False and o["currency"] == "USD"


async def test_an_unknown_customer_is_a_422_and_nothing_is_written(client, auth_headers):
    r = await client.post(
        "/api/v1/opportunities", json={"title": "X", "customerId": str(uuid.uuid4())}, headers=auth_headers()
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "UNKNOWN_CUSTOMER" and r.json()["errors"][0]["field"] == "customerId"
    assert await count_rows(client, Opportunity) == 0
    assert await outbox_payloads(client) == []


async def test_owner_and_team_must_exist_and_be_active(
    client, auth_headers, new_customer, new_user, new_team
):
    customer = str(await new_customer())
    headers = auth_headers("sales_manager")
    for field, value, code in [
        ("ownerId", str(uuid.uuid4()), "UNKNOWN_USER"),
        ("ownerId", str(await new_user(active=False)), "UNKNOWN_USER"),
        ("teamId", str(uuid.uuid4()), "UNKNOWN_TEAM"),
    ]:
        r = await client.post(
            "/api/v1/opportunities",
            json={"title": "X", "customerId": customer, field: value},
            headers=headers,
        )
        assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert await count_rows(client, Opportunity) == 0
    owner, team = await new_user("Olga Owner"), await new_team()
    r = await client.post(
        "/api/v1/opportunities",
        json={"title": "X", "customerId": customer, "ownerId": str(owner), "teamId": str(team)},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["ownerName"] == "Olga Owner" and r.json()["teamId"] == str(team)


BAD_CREATES = [
    ({"amount": "-1"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"amount": "NaN"}, "amount"),
    ({"amount": "Infinity"}, "amount"),
    ({"amount": "1.234"}, "amount"),
    ({"amount": "12345678901234567.00"}, "amount"),
    ({"currency": "usd"}, "currency"),
    ({"currency": "US"}, "currency"),
    ({"currency": "XYZ"}, "currency"),
    ({"expectedCloseDate": "2026-02-30"}, "expectedCloseDate"),
    ({"expectedCloseDate": "next week"}, "expectedCloseDate"),
    ({"expectedCloseDate": 1767225600}, "expectedCloseDate"),
    ({"title": ""}, "title"),
    ({"title": None}, "title"),
    ({"customerId": "not-a-uuid"}, "customerId"),
    ({"probability": 50}, "probability"),  # follows the stage: not settable on create
    ({"stageId": str(uuid.uuid4())}, "stageId"),
    ({"competitors": "Globex"}, "competitors"),
]


async def test_bad_create_input_is_a_422_and_writes_nothing(client, auth_headers, new_customer):
    for patch, field in BAD_CREATES:
        body = {"title": "Deal", "customerId": str(await new_customer()), **patch}
        r = await client.post("/api/v1/opportunities", json=body, headers=auth_headers())
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert field in {e["field"] for e in r.json()["errors"]}, r.json()["errors"]
        assert await count_rows(client, Opportunity) == 0
        assert await outbox_payloads(client, "opportunity.created") == []


async def test_patch_edits_fields_and_publishes_the_changes(client, auth_headers, new_opportunity):
    o = await new_opportunity(amount="100.00")
    url = f"/api/v1/opportunities/{o['id']}"
    headers = auth_headers("sales_rep")
    r = await client.patch(
        url,
        json={
            "title": "Renamed",
            "probability": 35,
            "expectedCloseDate": "2027-01-15",
            "customFields": {"a": 1},
        },
        headers={**headers, "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["title"] == "Renamed" and body["probability"] == 35 and body["version"] == 2
    assert body["expectedCloseDate"] == "2027-01-15" and body["customFields"] == {"a": 1}
    assert r.headers["etag"] == 'W/"2"'
    (event,) = await outbox_payloads(client, "opportunity.updated")
    assert event["sequence"] == 2
    assert event["data"]["changes"] == {
        "title": "Renamed",
        "probability": 35,
        "expectedCloseDate": "2027-01-15",
        "customFields": {"a": 1},
    }
    assert event["data"]["probability"] == 35 and event["data"]["amount"] == "100.00"

    # The same values again: nothing changes, no version bump, no event.
    same = await client.patch(url, json={"title": "Renamed", "version": 2}, headers=headers)
    assert same.status_code == 200 and same.json()["version"] == 2
    assert len(await outbox_payloads(client, "opportunity.updated")) == 1


async def test_patch_needs_a_current_version(client, auth_headers, new_opportunity):
    o = await new_opportunity()
    url = f"/api/v1/opportunities/{o['id']}"
    r = await client.patch(url, json={"title": "A"}, headers=auth_headers())
    assert r.status_code == 428 and r.json()["code"] == "PRECONDITION_REQUIRED"
    await client.patch(url, json={"title": "A", "version": 1}, headers=auth_headers())
    r = await client.patch(url, json={"title": "B"}, headers={**auth_headers(), "If-Match": 'W/"1"'})
    assert r.status_code == 412 and r.json()["code"] == "VERSION_CONFLICT"
    assert (await client.get(url, headers=auth_headers())).json()["title"] == "A"


BAD_PATCHES = [
    ({"probability": 101}, "probability"),
    ({"probability": -5}, "probability"),
    ({"probability": "high"}, "probability"),
    ({"amount": "-0.01"}, "amount"),
    ({"currency": "EURO"}, "currency"),
    ({"currency": None}, "body"),
    ({"expectedCloseDate": "31/12/2026"}, "expectedCloseDate"),
    ({"status": "WON"}, "status"),
    ({"stageId": str(uuid.uuid4())}, "stageId"),
]


async def test_bad_patch_input_is_a_422_and_changes_nothing(client, auth_headers, new_opportunity):
    o = await new_opportunity(amount="10.00")
    url = f"/api/v1/opportunities/{o['id']}"
    for patch, field in BAD_PATCHES:
        r = await client.patch(url, json={**patch, "version": 1}, headers=auth_headers())
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}, r.json()
    assert (await client.get(url, headers=auth_headers())).json() == o
    assert await outbox_payloads(client, "opportunity.updated") == []


async def test_unknown_opportunity_is_a_404(client, auth_headers):
    r = await client.get(f"/api/v1/opportunities/{uuid.uuid4()}", headers=auth_headers())
    assert r.status_code == 404 and r.json()["code"] == "OPPORTUNITY_NOT_FOUND"
    r = await client.get("/api/v1/opportunities/nope", headers=auth_headers())
    assert r.status_code == 422


async def test_sales_access_is_needed(client, auth_headers, new_customer):
    customer = str(await new_customer())
    r = await client.post(
        "/api/v1/opportunities",
        json={"title": "X", "customerId": customer},
        headers=auth_headers("support_agent"),
    )
    assert r.status_code == 403 and "`sales:write`" in r.json()["detail"]
    # read_only reads the pipeline but writes nothing.
    reader = auth_headers("read_only")
    assert (await client.get("/api/v1/opportunities/board", headers=reader)).status_code == 200
    r = await client.post(
        "/api/v1/opportunities", json={"title": "X", "customerId": customer}, headers=reader
    )
    assert r.status_code == 403 and "`sales:write`" in r.json()["detail"]
    no_sales = auth_headers("read_only", perms=["customers:read"])
    r = await client.get("/api/v1/opportunities/board", headers=no_sales)
    assert r.status_code == 403 and "`sales:read`" in r.json()["detail"]


async def test_list_filters_sorts_and_pages(client, auth_headers, new_customer, new_opportunity, new_user):
    acme, globex = await new_customer("Acme"), await new_customer("Globex")
    owner = await new_user()
    await new_opportunity(title="Alpha", customerId=str(acme), amount="300")
    await new_opportunity(title="Beta", customerId=str(acme), amount="100", expectedCloseDate="2026-03-01")
    await new_opportunity(title="Gamma", customerId=str(globex), amount="200", ownerId=str(owner))
    headers = auth_headers("sales_rep")

    async def titles(**params):
        r = await client.get("/api/v1/opportunities", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [o["title"] for o in r.json()["items"]]

    assert await titles(sort="amount") == ["Beta", "Gamma", "Alpha"]
    assert await titles(sort="-amount", pageSize=2) == ["Alpha", "Gamma"]
    assert await titles(sort="-amount", pageSize=2, page=2) == ["Beta"]
    assert sorted(await titles(customerId=str(acme))) == ["Alpha", "Beta"]
    assert await titles(ownerId=str(owner)) == ["Gamma"]
    assert await titles(q="amm") == ["Gamma"]
    assert await titles(expectedCloseFrom="2026-01-01", expectedCloseTo="2026-12-31") == ["Beta"]
    assert len(await titles(status="OPEN")) == 3 and await titles(status="WON") == []
    page = (await client.get("/api/v1/opportunities", params={"pageSize": 1}, headers=headers)).json()
    assert page["total"] == 3 and page["pageSize"] == 1
    bad = await client.get("/api/v1/opportunities", params={"sort": "owner"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "INVALID_SORT"


async def test_a_retried_create_with_an_idempotency_key_happens_once(client, auth_headers, new_customer):
    body = {"title": "Retry me", "customerId": str(await new_customer())}
    headers = {**auth_headers("sales_rep", user_id=uuid.uuid4()), "Idempotency-Key": "create-1"}
    first = await client.post("/api/v1/opportunities", json=body, headers=headers)
    again = await client.post("/api/v1/opportunities", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert await count_rows(client, Opportunity) == 1
    assert len(await outbox_payloads(client, "opportunity.created")) == 1
    other = await client.post("/api/v1/opportunities", json={**body, "title": "Else"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_a_patch_changes_only_what_it_sends_and_null_empties_only_what_may_be_empty(
    client, auth_headers, new_opportunity
):
    o = await new_opportunity(description="Renewal", expectedCloseDate="2027-01-15", competitors=["Globex"])
    url = f"/api/v1/opportunities/{o['id']}"
    before = (await client.get(url, headers=auth_headers())).json()
    for field in ("title", "currency", "probability", "ownerId", "competitors", "customFields"):
        r = await client.patch(url, json={field: None, "version": 1}, headers=auth_headers())
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
        r = await client.post(
            "/api/v1/opportunities/batch/update",
            json={"items": [{"id": o["id"], field: None, "version": 1}]},
            headers=auth_headers(),
        )
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", field
    assert (await client.get(url, headers=auth_headers())).json() == before
    r = await client.patch(
        url, json={"description": None, "expectedCloseDate": None, "version": 1}, headers=auth_headers()
    )
    assert r.status_code == 200, r.text
    changed = {
        "description": None,
        "expectedCloseDate": None,
        "version": 2,
        "updatedAt": r.json()["updatedAt"],
    }
    assert r.json() == {**before, **changed}


async def test_without_an_active_open_stage_no_opportunity_can_start(
    client, auth_headers, stages, new_customer
):
    for stage in (await stages()).values():
        if stage["isActive"] and not (stage["isWon"] or stage["isLost"]):
            r = await client.patch(
                f"/api/v1/stages/{stage['id']}",
                json={"isActive": False, "version": stage["version"]},
                headers=auth_headers("admin"),
            )
            assert r.status_code == 200, r.text
    body = {"title": "Deal", "customerId": str(await new_customer())}
    r = await client.post("/api/v1/opportunities", json=body, headers=auth_headers())
    assert (r.status_code, r.json()["code"]) == (409, "NO_ACTIVE_STAGE")
    assert await count_rows(client, Opportunity) == 0
