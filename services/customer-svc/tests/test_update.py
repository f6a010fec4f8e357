"""PATCH /customers/{id}: partial, validated, optimistic concurrency, customer.updated."""

import asyncio
import uuid

import pytest

from .conftest import count_rows, create, outbox_payloads


async def patch(client, customer, body, headers, *, if_match=True):
    h = dict(headers)
    if if_match:
        h["If-Match"] = f'W/"{customer["version"]}"'
    return await client.patch(f"/api/v1/customers/{customer['id']}", json=body, headers=h)


async def test_patch_changes_only_what_is_sent_and_keeps_full_name_consistent(client, auth_headers):
    user = uuid.uuid4()
    headers = auth_headers("sales_rep", user_id=user)
    ada = await create(client, headers, firstName="Ada", lastName="Lovelace", phone="123", tags=["a"])
    r = await patch(client, ada, {"lastName": "Byron", "priority": "HIGH"}, headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lastName"] == "Byron" and body["fullName"] == "Ada Byron"
    assert body["priority"] == "HIGH"
    assert body["phone"] == "123" and body["tags"] == ["a"] and body["firstName"] == "Ada"
    assert body["version"] == 2 and r.headers["etag"] == 'W/"2"'
    assert body["updatedAt"] > ada["updatedAt"] and body["createdAt"] == ada["createdAt"]

    (event,) = await outbox_payloads(client, "customer.updated")
    assert event["type"] == "crm.customer.updated"
    assert event["subject"] == ada["id"] and event["sequence"] == 2
    assert event["data"]["changes"] == {"lastName": "Byron", "priority": "HIGH", "fullName": "Ada Byron"}
    assert event["data"]["fullName"] == "Ada Byron" and event["data"]["updatedBy"] == str(user)

    got = await client.get(f"/api/v1/customers/{ada['id']}", headers=headers)
    assert got.json() == body and got.headers["etag"] == 'W/"2"'


async def test_version_in_the_body_instead_of_if_match(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers)
    r = await patch(client, c, {"title": "Dr", "version": 1}, headers, if_match=False)
    assert r.status_code == 200 and r.json()["title"] == "Dr" and r.json()["version"] == 2
    stale = await patch(client, c, {"title": "Prof", "version": 1}, headers, if_match=False)
    assert stale.status_code == 412 and stale.json()["code"] == "VERSION_CONFLICT"


async def test_stale_or_missing_version_is_refused_and_writes_nothing(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, firstName="Old")
    assert (await patch(client, c, {"firstName": "New"}, headers)).status_code == 200
    stale = await patch(client, c, {"firstName": "Newer"}, headers)  # still sends W/"1"
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["code"] == "VERSION_CONFLICT" and stale.json()["currentVersion"] == 2
    missing = await patch(client, c, {"firstName": "Newer"}, headers, if_match=False)
    assert missing.status_code == 428 and missing.json()["code"] == "PRECONDITION_REQUIRED"
    now = (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json()
    assert now["firstName"] == "New" and now["version"] == 2
    assert len(await outbox_payloads(client, "customer.updated")) == 1


async def test_if_match_star_and_a_list_of_etags(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers)
    h = {**headers, "If-Match": "*"}
    assert (
        await client.patch(f"/api/v1/customers/{c['id']}", json={"title": "A"}, headers=h)
    ).status_code == 200
    h = {**headers, "If-Match": 'W/"1", W/"2"'}
    assert (
        await client.patch(f"/api/v1/customers/{c['id']}", json={"title": "B"}, headers=h)
    ).status_code == 200


READ_ONLY_FIELDS = [
    "customerNumber",
    "totalValue",
    "lifetimeValue",
    "id",
    "fullName",
    "createdAt",
]


async def test_read_only_fields_are_422_not_silently_ignored(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers)
    for field in READ_ONLY_FIELDS:
        r = await patch(client, c, {field: "1", "title": "X"}, headers)
        assert r.status_code == 422, r.text
        (error,) = r.json()["errors"]
        assert error["field"] == field and error["code"] == "read_only"
        created = await client.post(
            "/api/v1/customers",
            json={"firstName": "A", "email": "ro@example.com", field: "1"},
            headers=headers,
        )
        assert created.status_code == 422 and created.json()["errors"][0]["field"] == field
        now = (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json()
        assert now["version"] == 1 and now["title"] is None
        assert await count_rows(client) == 1
        assert await outbox_payloads(client, "customer.updated") == []


BAD_UPDATES = [
    ({"email": "not-an-email"}, "email"),
    ({"email": None}, "email"),
    ({"status": "WHALE"}, "status"),
    ({"status": None}, "status"),
    ({"priority": None}, "priority"),
    ({"addresses": None}, "addresses"),
    ({"type": None}, "type"),
    ({"priority": "URGENT"}, "priority"),
    ({"tags": None}, "tags"),
    ({"tags": "vip"}, "tags"),
    ({"customFields": None}, "customFields"),
    ({"employeeCount": "many"}, "employeeCount"),
    ({"annualRevenue": "-1"}, "annualRevenue"),
    ({"nextContactDate": "2030-01-01T10:00:00"}, "nextContactDate"),  # no time zone
    ({"unknownField": 1}, "unknownField"),
    ({"assignedToId": str(uuid.uuid4())}, "assignedToId"),
    ({"teamId": str(uuid.uuid4())}, "teamId"),
    ({"addresses": [{"isPrimary": True}, {"isPrimary": True}]}, "addresses"),
    ({"firstName": None, "lastName": None}, "firstName"),  # an individual needs a name
    ({"type": "COMPANY"}, "companyName"),  # a company needs companyName
    ({"version": "two"}, "version"),
]


async def test_bad_updates_are_422_and_change_nothing(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, firstName="Ada")
    for body, field in BAD_UPDATES:
        r = await patch(client, c, body, headers)
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert field in {e["field"] for e in r.json()["errors"]}, (body, r.json())
        now = (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json()
        assert now == c
        assert await outbox_payloads(client, "customer.updated") == []


async def test_type_change_to_company_takes_the_company_name(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, firstName="Ada")
    r = await patch(client, c, {"type": "COMPANY", "companyName": "Analytical Engines Ltd"}, headers)
    assert r.status_code == 200
    assert r.json()["fullName"] == "Analytical Engines Ltd"
    back = await patch(client, r.json(), {"type": "INDIVIDUAL"}, headers)
    assert back.json()["fullName"] == "Ada"


async def test_null_clears_an_optional_field(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, phone="123", notes="hello")
    r = await patch(client, c, {"phone": None, "notes": None}, headers)
    assert r.status_code == 200 and r.json()["phone"] is None and r.json()["notes"] is None
    (event,) = await outbox_payloads(client, "customer.updated")
    assert event["data"]["changes"] == {"phone": None, "notes": None}


async def test_email_change_is_unique_case_insensitively(client, auth_headers):
    headers = auth_headers()
    await create(client, headers, email="taken@example.com")
    c = await create(client, headers, email="mine@example.com")
    r = await patch(client, c, {"email": "TAKEN@example.com"}, headers)
    assert r.status_code == 409 and r.json()["code"] == "CUSTOMER_EMAIL_EXISTS"
    own_case = await patch(client, c, {"email": "MINE@example.com"}, headers)
    assert own_case.status_code == 200 and own_case.json()["email"] == "MINE@example.com"


async def test_addresses_are_replaced_as_a_whole(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, addresses=[{"type": "HOME", "city": "London", "isPrimary": True}])
    r = await patch(
        client,
        c,
        {
            "addresses": [
                {"type": "OFFICE", "city": "Paris", "street": "Rue X"},
                {"type": "BILLING", "city": "Rome"},
            ]
        },
        headers,
    )
    assert r.status_code == 200
    assert sorted(a["city"] for a in r.json()["addresses"]) == ["Paris", "Rome"]
    (event,) = await outbox_payloads(client, "customer.updated")
    assert {a["city"] for a in event["data"]["changes"]["addresses"]} == {"Paris", "Rome"}
    # The same addresses again (in another order) change nothing.
    same = [{"type": "BILLING", "city": "Rome"}, {"type": "OFFICE", "city": "Paris", "street": "Rue X"}]
    again = await patch(client, r.json(), {"addresses": same}, headers)
    assert again.status_code == 200 and again.json()["version"] == r.json()["version"]


async def test_a_patch_that_changes_nothing_keeps_the_version_and_publishes_nothing(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers, firstName="Ada", tags=["x"])
    r = await patch(client, c, {"firstName": "Ada", "tags": ["x"]}, headers)
    assert r.status_code == 200 and r.json()["version"] == 1
    assert await outbox_payloads(client, "customer.updated") == []


async def test_unknown_customer_is_404(client, auth_headers):
    r = await client.patch(
        f"/api/v1/customers/{uuid.uuid4()}", json={"title": "x"}, headers={**auth_headers(), "If-Match": "*"}
    )
    assert r.status_code == 404 and r.json()["code"] == "CUSTOMER_NOT_FOUND"


async def test_update_needs_customer_access(client, auth_headers):
    c = await create(client, auth_headers())
    r = await patch(client, c, {"title": "x"}, auth_headers("nobody"))
    assert r.status_code == 403


async def test_concurrent_updates_with_one_version_exactly_one_wins(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers)
    responses = await asyncio.gather(*(patch(client, c, {"title": f"T{i}"}, headers) for i in range(8)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [412] * 7, [r.text for r in responses]
    winner = next(r.json() for r in responses if r.status_code == 200)
    now = (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json()
    assert now["version"] == 2 and now["title"] == winner["title"]
    assert len(await outbox_payloads(client, "customer.updated")) == 1


async def test_idempotency_key_replays_a_retried_update(client, auth_headers):
    plain = auth_headers(user_id=uuid.uuid4())
    headers = {**plain, "Idempotency-Key": "patch-1"}
    c = await create(client, plain)
    first = await patch(client, c, {"title": "Dr"}, headers)
    again = await patch(client, c, {"title": "Dr"}, headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()


# SQLite serialises writers, so there the second reads the new version and gets a 412 up front.
@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_write_racing_past_the_version_check_still_fails(client, auth_headers):
    """Both writers read version 1 and pass the If-Match check; the UPDATE's `WHERE version = 1`
    refuses the second (StaleDataError, answered as a 412)."""
    from crm_common.record_scope import ScopedCaller
    from customer_svc.schemas import CustomerUpdateRequest
    from customer_svc.service import customers
    from sqlalchemy.orm.exc import StaleDataError

    c = await create(client, auth_headers())
    db = client.app.state.runtime.db
    a_flushed = asyncio.Event()

    async def writer(title, *, first):
        if not first:
            await a_flushed.wait()
        async with db.transaction() as s:
            await customers.update_customer(
                s,
                customer_id=uuid.UUID(c["id"]),
                data=CustomerUpdateRequest(title=title),
                if_match='W/"1"',
                caller=ScopedCaller.unrestricted(uuid.uuid4(), "customers"),
            )
            if first:
                a_flushed.set()
                await asyncio.sleep(0.3)  # hold the row lock while the other one checks and writes

    a, b = await asyncio.gather(writer("A", first=True), writer("B", first=False), return_exceptions=True)
    assert a is None and isinstance(b, StaleDataError), (a, b)
    now = (await client.get(f"/api/v1/customers/{c['id']}", headers=auth_headers())).json()
    assert now["title"] == "A" and now["version"] == 2
