"""The customer API as a client sees it, on SQLite and on Postgres."""

import asyncio
import re
import uuid
from datetime import UTC, datetime

import pytest
from crm_common.testing.plugin import admitted

from .conftest import count_rows, outbox_payloads

ADA = {
    "firstName": "Ada",
    "lastName": "Lovelace",
    "email": "ada@example.com",
    "phone": "+44 20 1234",
    "tags": ["vip", "math"],
    "customFields": {"segment": "enterprise"},
    "addresses": [
        {"type": "HOME", "city": "London", "country": "UK", "isPrimary": True},
        {"type": "BILLING", "city": "Oxford"},
    ],
}


async def test_create_returns_the_customer_in_camel_case(client, auth_headers):
    user = uuid.uuid4()
    r = await client.post("/api/v1/customers", json=ADA, headers=auth_headers("sales_rep", user_id=user))
    assert r.status_code == 201, r.text
    body = r.json()
    year = datetime.now(UTC).year
    assert re.fullmatch(rf"CUST-{year}-\d{{6}}", body["customerNumber"])
    assert body["fullName"] == "Ada Lovelace"
    assert body["type"] == "INDIVIDUAL"
    assert body["status"] == "LEAD"
    assert body["priority"] == "MEDIUM"
    assert body["assignedToId"] == str(user)  # defaults to the caller
    assert body["totalValue"] == "0.00" and body["lifetimeValue"] == "0.00"
    assert body["tags"] == ["vip", "math"]
    assert body["customFields"] == {"segment": "enterprise"}
    assert {a["city"] for a in body["addresses"]} == {"London", "Oxford"}
    assert [a["isPrimary"] for a in body["addresses"] if a["city"] == "London"] == [True]
    assert body["version"] == 1
    assert body["createdAt"].endswith("Z") or body["createdAt"].endswith("+00:00")
    assert r.headers["location"] == f"/api/v1/customers/{body['id']}"
    assert r.headers["etag"] == 'W/"1"'

    got = await client.get(f"/api/v1/customers/{body['id']}", headers=auth_headers("read_only"))
    assert got.status_code == 200
    assert got.json() == body


async def test_create_writes_customer_created_to_the_outbox(client, auth_headers):
    user = uuid.uuid4()
    r = await client.post(
        "/api/v1/customers",
        json={"type": "COMPANY", "companyName": "Acme Ltd", "email": "hq@acme.example"},
        headers={**auth_headers("sales_rep", user_id=user), "X-Request-ID": "req-42"},
    )
    assert r.status_code == 201
    (event,) = await outbox_payloads(client)
    assert event["type"] == "crm.customer.created"
    assert event["source"] == "/crm/customer"
    assert event["subject"] == r.json()["id"]
    assert event["sequence"] == 1
    assert event["correlationid"] == "req-42"
    assert event["data"]["customerNumber"] == r.json()["customerNumber"]
    assert event["data"]["fullName"] == "Acme Ltd"
    assert event["data"]["type"] == "COMPANY"
    assert event["data"]["createdBy"] == str(user)
    assert event["data"]["priority"] == "MEDIUM"


async def test_email_is_unique_case_insensitively_and_nothing_is_half_written(client, auth_headers):
    first = await client.post("/api/v1/customers", json=ADA, headers=auth_headers())
    assert first.status_code == 201
    again = {**ADA, "email": "ADA@Example.COM", "firstName": "Other"}
    r = await client.post("/api/v1/customers", json=again, headers=auth_headers())
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "CUSTOMER_EMAIL_EXISTS"
    assert r.json()["errors"][0]["field"] == "email"
    assert await count_rows(client) == 1
    assert len(await outbox_payloads(client)) == 1
    # The refused create took no number: the next one is the next.
    other = await client.post(
        "/api/v1/customers", json={**ADA, "email": "other@example.com"}, headers=auth_headers()
    )
    number = first.json()["customerNumber"]
    assert other.json()["customerNumber"] == f"{number[:-6]}{int(number[-6:]) + 1:06d}"


async def test_concurrent_creates_with_one_email_exactly_one_wins(client, auth_headers):
    headers = auth_headers()
    bodies = [{**ADA, "email": "RACE@example.com" if i % 2 else "race@example.com"} for i in range(8)]
    responses = await asyncio.gather(
        *(client.post("/api/v1/customers", json=b, headers=headers) for b in bodies)
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 7, [r.text for r in responses if r.status_code not in (201, 409)]
    assert await count_rows(client) == 1
    assert len(await outbox_payloads(client)) == 1


async def test_fifty_concurrent_creates_get_fifty_consecutive_numbers(client, auth_headers):
    headers = auth_headers()
    responses = await asyncio.gather(
        *(
            admitted(
                lambda i=i: client.post(
                    "/api/v1/customers",
                    json={"lastName": f"N{i}", "email": f"n{i}@example.com"},
                    headers=headers,
                )
            )
            for i in range(50)
        )
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    numbers = sorted(int(r.json()["customerNumber"].rsplit("-", 1)[1]) for r in responses)
    assert numbers == list(range(1, 51))


async def test_a_failed_create_gives_its_number_back(client, auth_headers):
    headers = auth_headers()
    first = await client.post("/api/v1/customers", json=ADA, headers=headers)
    await client.post("/api/v1/customers", json=ADA, headers=headers)  # 409
    second = await client.post("/api/v1/customers", json={**ADA, "email": "b@example.com"}, headers=headers)
    n1 = int(first.json()["customerNumber"][-6:])
    assert int(second.json()["customerNumber"][-6:]) == n1 + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.com"}, "body"),  # an individual needs a name
        (
            {"type": "COMPANY", "firstName": "A", "email": "x@example.com"},
            "body",
        ),  # a company needs companyName
        ({"firstName": "A", "email": "not-an-email"}, "email"),
        ({"firstName": "A"}, "email"),
        ({"firstName": "A", "email": "x@example.com", "status": "WHALE"}, "status"),
        ({"firstName": "A", "email": "x@example.com", "type": "ROBOT"}, "type"),
        ({"firstName": "A", "email": "x@example.com", "unknownField": 1}, "unknownField"),
        ({"firstName": "A", "email": "x@example.com", "annualRevenue": "-5"}, "annualRevenue"),
        ({"firstName": "A", "email": "x@example.com", "employeeCount": -1}, "employeeCount"),
        (
            {
                "firstName": "A",
                "email": "x@example.com",
                "addresses": [{"isPrimary": True}, {"isPrimary": True}],
            },
            "body",
        ),
        ({"firstName": "A", "email": "x@example.com", "addresses": [{"type": "MOON"}]}, "addresses.0.type"),
        ({"firstName": "A", "email": "x@example.com", "status": "INACTIVE"}, "body"),
        # NUL characters: Postgres cannot store them in text; refused on both databases alike.
        ({"firstName": "A\x00B", "email": "x@example.com"}, "firstName"),
        ({"firstName": "A", "email": "x@example.com", "customFields": {"k\x00": 1}}, "customFields"),
        ({"firstName": "A", "email": "x@example.com", "addresses": [{"city": "\x00"}]}, "addresses"),
        # JSON types as meant: a number is no date-time, 0 no boolean, a boolean no number.
        ({"firstName": "A", "email": "x@example.com", "nextContactDate": 1767225600}, "nextContactDate"),
        (
            {"firstName": "A", "email": "x@example.com", "addresses": [{"isPrimary": 0}]},
            "addresses.0.isPrimary",
        ),
        ({"firstName": "A", "email": "x@example.com", "employeeCount": True}, "employeeCount"),
        (
            {
                "firstName": "A",
                "email": "x@example.com",
                "customFields": {"k": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
            },
            "customFields",
        ),
    ],
)
async def test_bad_input_is_a_422_problem_and_writes_nothing(client, auth_headers, body, field):
    r = await client.post("/api/v1/customers", json=body, headers=auth_headers())
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "VALIDATION_ERROR"
    assert field in {e["field"] for e in problem["errors"]}
    assert await count_rows(client) == 0
    assert await outbox_payloads(client) == []


async def test_list_pages_sorts_filters_and_searches(client, auth_headers):
    headers = auth_headers()
    people = [
        ("Zed", "LEAD", "HIGH"),
        ("Amy", "CUSTOMER", "LOW"),
        ("Bob", "LEAD", "LOW"),
        ("Cy", "PROSPECT", "LOW"),
    ]
    for name, status, priority in people:
        r = await client.post(
            "/api/v1/customers",
            json={"firstName": name, "email": f"{name}@example.com", "status": status, "priority": priority},
            headers=headers,
        )
        assert r.status_code == 201
    page = (
        await client.get("/api/v1/customers", params={"pageSize": 2, "sort": "fullName"}, headers=headers)
    ).json()
    assert page["total"] == 4 and page["page"] == 1 and page["pageSize"] == 2
    assert [c["fullName"] for c in page["items"]] == ["Amy", "Bob"]
    page2 = (
        await client.get(
            "/api/v1/customers", params={"page": 2, "pageSize": 2, "sort": "fullName"}, headers=headers
        )
    ).json()
    assert [c["fullName"] for c in page2["items"]] == ["Cy", "Zed"]
    desc = (await client.get("/api/v1/customers", params={"sort": "-fullName"}, headers=headers)).json()
    assert desc["items"][0]["fullName"] == "Zed"
    leads = (await client.get("/api/v1/customers", params={"status": "LEAD"}, headers=headers)).json()
    assert {c["fullName"] for c in leads["items"]} == {"Zed", "Bob"}
    two = (
        await client.get(
            "/api/v1/customers", params=[("status", "LEAD"), ("status", "PROSPECT")], headers=headers
        )
    ).json()
    assert two["total"] == 3
    low_leads = (
        await client.get("/api/v1/customers", params={"status": "LEAD", "priority": "LOW"}, headers=headers)
    ).json()
    assert [c["fullName"] for c in low_leads["items"]] == ["Bob"]
    found = (await client.get("/api/v1/customers", params={"q": "AMY@EXAMPLE"}, headers=headers)).json()
    assert [c["fullName"] for c in found["items"]] == ["Amy"]
    by_number = (
        await client.get(
            "/api/v1/customers", params={"q": found["items"][0]["customerNumber"]}, headers=headers
        )
    ).json()
    assert by_number["total"] == 1


async def test_list_rejects_unknown_sort_fields_and_filter_values(client, auth_headers):
    headers = auth_headers()
    bad_sort = await client.get("/api/v1/customers", params={"sort": "password"}, headers=headers)
    assert bad_sort.status_code == 422 and bad_sort.json()["code"] == "INVALID_SORT"
    bad_status = await client.get("/api/v1/customers", params={"status": "WHALE"}, headers=headers)
    assert bad_status.status_code == 422 and bad_status.json()["errors"][0]["field"].startswith("status")
    too_big = await client.get("/api/v1/customers", params={"pageSize": 201}, headers=headers)
    assert too_big.status_code == 422


async def test_unknown_customer_is_404(client, auth_headers):
    r = await client.get(f"/api/v1/customers/{uuid.uuid4()}", headers=auth_headers())
    assert r.status_code == 404 and r.json()["code"] == "CUSTOMER_NOT_FOUND"
    bad_id = await client.get("/api/v1/customers/not-a-uuid", headers=auth_headers())
    assert bad_id.status_code == 422


async def test_access_needs_a_token_with_customer_access(client, auth_headers, make_token):
    assert (await client.get("/api/v1/customers")).status_code == 401
    assert (await client.post("/api/v1/customers", json=ADA)).status_code == 401
    no_perm = await client.post("/api/v1/customers", json=ADA, headers=auth_headers("nobody"))
    assert no_perm.status_code == 403
    expired = await client.get(
        "/api/v1/customers", headers={"Authorization": f"Bearer {make_token(expires_in=-1)}"}
    )
    assert expired.status_code == 401
    assert await count_rows(client) == 0


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
    metrics = await client.get("/metrics")
    assert "crm_http_requests_total" in metrics.text


async def test_a_boolean_is_not_a_version(client, auth_headers):
    h = auth_headers()
    c = (
        await client.post("/api/v1/customers", json={"firstName": "A", "email": "v@example.com"}, headers=h)
    ).json()
    r = await client.patch(f"/api/v1/customers/{c['id']}", json={"notes": "n", "version": True}, headers=h)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["version"]
    r = await client.patch(f"/api/v1/customers/{c['id']}", json={"notes": "n", "version": 1}, headers=h)
    assert r.status_code == 200 and r.json()["notes"] == "n"


async def test_a_nul_character_in_a_query_parameter_is_a_422_on_either_database(client, auth_headers):
    # Postgres refused the search itself (a 500); SQLite found nothing. Either way it is the client's.
    h = auth_headers()
    for params, field in (({"q": "a\x00b"}, "q"), ({"q": "ok", "sort": "fullName\x00"}, "sort")):
        r = await client.get("/api/v1/customers", params=params, headers=h)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [(field, "string_nul")]
    # A literal "%00" typed into a search is text like any other.
    assert (await client.get("/api/v1/customers", params={"q": "a%00b"}, headers=h)).status_code == 200
