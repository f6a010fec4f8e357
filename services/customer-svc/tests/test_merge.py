"""POST /customers/merge: rules, one transaction, tombstone, customer.merged."""

import asyncio
import re
import uuid

from customer_svc.models import CustomerAddress

from .conftest import count_rows, create, deliver, opportunity_event, outbox_payloads


async def merge(client, headers, primary, secondary, rules=None):
    body = {"primaryCustomerId": primary, "secondaryCustomerId": secondary}
    if rules is not None:
        body["mergeRules"] = rules
    return await client.post("/api/v1/customers/merge", json=body, headers=headers)


async def get(client, headers, customer_id):
    return (await client.get(f"/api/v1/customers/{customer_id}", headers=headers)).json()


async def test_default_merge_keeps_the_primary_and_tombstones_the_secondary(client, auth_headers):
    user = uuid.uuid4()
    headers = auth_headers("sales_rep", user_id=user)
    p = await create(
        client,
        headers,
        firstName="Ada",
        email="ada@example.com",
        phone="111",
        customFields={"tier": "gold", "region": "EU"},
        addresses=[{"type": "HOME", "city": "London", "isPrimary": True}],
        notes="primary notes",
    )
    s = await create(
        client,
        headers,
        firstName="A.",
        lastName="Lovelace",
        email="ada.l@example.com",
        phone="222",
        customFields={"tier": "silver", "shoe": 42},
        addresses=[{"type": "OFFICE", "city": "Oxford", "isPrimary": True}, {"city": "Bath"}],
        notes="secondary notes",
    )
    r = await merge(client, headers, p["id"], s["id"])
    assert r.status_code == 200, r.text
    primary, secondary = r.json()["customer"], r.json()["mergedCustomer"]

    assert primary["id"] == p["id"] and primary["fullName"] == "Ada" and primary["phone"] == "111"
    assert primary["email"] == "ada@example.com" and primary["notes"] == "primary notes"
    assert primary["customFields"] == {"tier": "gold", "region": "EU", "shoe": 42}  # primary wins
    cities = {a["city"]: a["isPrimary"] for a in primary["addresses"]}
    assert cities == {"London": True, "Oxford": False, "Bath": False}
    assert primary["version"] == 2

    assert secondary["status"] == "INACTIVE" and secondary["mergedIntoId"] == p["id"]
    assert secondary["addresses"] == []
    assert secondary["notes"].startswith("secondary notes\n\n---\n\nMerged into customer ")
    assert re.search(
        rf"Merged into customer {p['customerNumber']} on \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z$",
        secondary["notes"],
    )
    assert await get(client, headers, p["id"]) == primary
    assert await get(client, headers, s["id"]) == secondary

    (event,) = await outbox_payloads(client, "customer.merged")
    assert event["type"] == "crm.customer.merged" and event["subject"] == p["id"] and event["sequence"] == 2
    data = event["data"]
    assert data["primaryCustomerId"] == p["id"] and data["secondaryCustomerId"] == s["id"]
    assert data["primaryCustomerNumber"] == p["customerNumber"]
    assert data["secondaryCustomerNumber"] == s["customerNumber"]
    assert data["primaryFullName"] == "Ada" and data["secondaryFullName"] == "A. Lovelace"
    assert data["mergedBy"] == str(user) and data["mergedAt"]
    assert data["primaryChanges"] == {"customFields": {"tier": "gold", "region": "EU", "shoe": 42}}


async def test_merge_rules_secondary_latest_and_combine(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers, firstName="Ada", phone="111", title="Ms", tags=["vip", "eu"], notes="p")
    s = await create(client, headers, firstName="Ada", lastName="King", tags=["eu", "math"], notes="s")
    # The secondary was edited after the primary: `latest` takes its values (when set).
    s = (
        await client.patch(
            f"/api/v1/customers/{s['id']}", json={"industry": "Science"}, headers={**headers, "If-Match": "*"}
        )
    ).json()
    rules = {
        "lastName": "secondary",
        "phone": "secondary",  # the secondary has none: the primary's stays
        "industry": "latest",
        "title": "latest",  # the secondary has none: the primary's stays
        "tags": "combine",
        "notes": "combine",
        "priority": "primary",
    }
    r = await merge(client, headers, p["id"], s["id"], rules)
    assert r.status_code == 200, r.text
    primary = r.json()["customer"]
    assert primary["lastName"] == "King" and primary["fullName"] == "Ada King"
    assert primary["phone"] == "111" and primary["title"] == "Ms"
    assert primary["industry"] == "Science"
    assert primary["tags"] == ["vip", "eu", "math"]
    assert primary["notes"] == "p\n\n---\n\ns"
    (event,) = await outbox_payloads(client, "customer.merged")
    assert event["data"]["primaryChanges"] == {
        "lastName": "King",
        "industry": "Science",
        "tags": ["vip", "eu", "math"],
        "notes": "p\n\n---\n\ns",
        "fullName": "Ada King",
    }


async def test_latest_keeps_the_primary_when_it_is_newer(client, auth_headers):
    headers = auth_headers()
    s = await create(client, headers, firstName="S", industry="Old")
    p = await create(client, headers, firstName="P", industry="New")
    r = await merge(client, headers, p["id"], s["id"], {"industry": "latest"})
    assert r.json()["customer"]["industry"] == "New"


async def test_the_secondary_email_can_pass_to_the_primary(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers, email="old@example.com")
    s = await create(client, headers, email="right@example.com")
    r = await merge(client, headers, p["id"], s["id"], {"email": "secondary"})
    assert r.status_code == 200, r.text
    assert r.json()["customer"]["email"] == "right@example.com"
    # A merged customer is a tombstone: the email now belongs to the primary alone ...
    taken = await client.post(
        "/api/v1/customers", json={"firstName": "X", "email": "RIGHT@example.com"}, headers=headers
    )
    assert taken.status_code == 409
    # ... and the primary's old email is free again.
    await create(client, headers, email="old@example.com")


async def test_totals_move_to_the_primary(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers)
    s = await create(client, headers)
    await deliver(
        client,
        opportunity_event(p["id"], amount="100.00"),
        opportunity_event(s["id"], amount="50.50"),
        opportunity_event(s["id"], amount="20.00", status="WON", routing_key="opportunity.won"),
    )
    r = await merge(client, headers, p["id"], s["id"])
    primary, secondary = r.json()["customer"], r.json()["mergedCustomer"]
    assert primary["totalValue"] == "150.50" and primary["lifetimeValue"] == "20.00"
    assert secondary["totalValue"] == "0.00" and secondary["lifetimeValue"] == "0.00"
    # The secondary's won opportunity makes the primary lead a customer.
    assert p["status"] == "LEAD" and primary["status"] == "CUSTOMER"
    assert (await outbox_payloads(client, "customer.merged"))[0]["data"]["primaryChanges"][
        "status"
    ] == "CUSTOMER"


async def test_refusals_write_nothing(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers)
    s = await create(client, headers)
    third = await create(client, headers)

    same = await merge(client, headers, p["id"], p["id"])
    assert same.status_code == 422 and same.json()["code"] == "MERGE_SAME_CUSTOMER"

    missing = await merge(client, headers, p["id"], str(uuid.uuid4()))
    assert missing.status_code == 404 and missing.json()["code"] == "CUSTOMER_NOT_FOUND"
    assert missing.json()["errors"][0]["field"] == "secondaryCustomerId"
    missing = await merge(client, headers, str(uuid.uuid4()), s["id"])
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "primaryCustomerId"

    assert (await merge(client, headers, p["id"], s["id"])).status_code == 200
    again = await merge(client, headers, third["id"], s["id"])
    assert again.status_code == 409 and again.json()["code"] == "CUSTOMER_ALREADY_MERGED"
    assert again.json()["errors"][0]["field"] == "secondaryCustomerId"
    into_merged = await merge(client, headers, s["id"], third["id"])
    assert into_merged.status_code == 409 and into_merged.json()["errors"][0]["field"] == "primaryCustomerId"

    assert len(await outbox_payloads(client, "customer.merged")) == 1
    assert (await get(client, headers, third["id"])) == third


async def test_a_merged_customer_cannot_be_changed(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers)
    s = await create(client, headers)
    await merge(client, headers, p["id"], s["id"])
    h = {**headers, "If-Match": "*"}
    r = await client.patch(f"/api/v1/customers/{s['id']}", json={"title": "x"}, headers=h)
    assert (
        r.status_code == 409 and r.json()["code"] == "CUSTOMER_MERGED" and r.json()["mergedIntoId"] == p["id"]
    )
    r = await client.post(f"/api/v1/customers/{s['id']}/convert", headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "CUSTOMER_MERGED"


BAD_RULES = [
    ({"phone": "combine"}, "mergeRules"),
    ({"phone": "newest"}, "mergeRules.phone"),
    ({"password": "primary"}, "mergeRules.password.[key]"),
    ({"customerNumber": "secondary"}, "mergeRules.customerNumber.[key]"),
    ("all-primary", "mergeRules"),
]


async def test_bad_rules_are_422(client, auth_headers):
    for rules, field in BAD_RULES:
        headers = auth_headers()
        p = await create(client, headers)
        s = await create(client, headers)
        r = await merge(client, headers, p["id"], s["id"], rules)
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}
        assert (await get(client, headers, s["id"]))["status"] == "LEAD"


async def test_missing_ids_are_422(client, auth_headers):
    r = await client.post(
        "/api/v1/customers/merge", json={"primaryCustomerId": str(uuid.uuid4())}, headers=auth_headers()
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "secondaryCustomerId"


async def test_rules_that_leave_the_primary_without_a_name_are_refused_whole(client, auth_headers):
    headers = auth_headers()
    p = await create(client, headers, firstName="Ada")
    s = await create(client, headers, type="COMPANY", companyName="Acme", addresses=[{"city": "Rome"}])
    r = await merge(client, headers, p["id"], s["id"], {"type": "secondary"})
    assert r.status_code == 422 and r.json()["code"] == "MERGE_INVALID_RESULT"
    # Nothing happened: the secondary is untouched, its address stayed.
    assert await get(client, headers, s["id"]) == s
    assert await get(client, headers, p["id"]) == p
    assert await count_rows(client, CustomerAddress) == 1
    assert await outbox_payloads(client, "customer.merged") == []
    ok = await merge(client, headers, p["id"], s["id"], {"type": "secondary", "companyName": "secondary"})
    assert ok.status_code == 200 and ok.json()["customer"]["fullName"] == "Acme"


async def test_concurrent_merges_of_one_secondary_merge_it_once(client, auth_headers):
    headers = auth_headers()
    s = await create(client, headers)
    primaries = [await create(client, headers) for _ in range(4)]
    responses = await asyncio.gather(*(merge(client, headers, p["id"], s["id"]) for p in primaries))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409], [r.text for r in responses]
    assert len(await outbox_payloads(client, "customer.merged")) == 1


async def test_merge_needs_customer_access(client, auth_headers):
    r = await merge(client, auth_headers("nobody"), str(uuid.uuid4()), str(uuid.uuid4()))
    assert r.status_code == 403
