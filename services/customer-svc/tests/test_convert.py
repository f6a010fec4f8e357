"""POST /customers/{id}/convert: LEAD or PROSPECT -> CUSTOMER, optional opportunity draft."""

import asyncio
import uuid

from .conftest import create, outbox_payloads


async def convert(client, customer_id, headers, body=None, **kwargs):
    return await client.post(f"/api/v1/customers/{customer_id}/convert", json=body, headers=headers, **kwargs)


async def test_a_lead_converts_to_a_customer(client, auth_headers):
    user = uuid.uuid4()
    headers = auth_headers("sales_rep", user_id=user)
    lead = await create(client, headers, firstName="Ada")
    r = await convert(client, lead["id"], headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer"]["status"] == "CUSTOMER" and body["customer"]["version"] == 2
    assert body["opportunity"] is None
    assert r.headers["etag"] == 'W/"2"'
    (event,) = await outbox_payloads(client, "customer.converted")
    assert event["subject"] == lead["id"] and event["sequence"] == 2
    data = event["data"]
    assert data["previousStatus"] == "LEAD" and data["status"] == "CUSTOMER"
    assert data["convertedBy"] == str(user) and data["opportunity"] is None
    assert data["customerNumber"] == lead["customerNumber"] and data["fullName"] == "Ada"


async def test_the_opportunity_draft_gets_its_id_here_and_travels_in_the_event(client, auth_headers):
    user = uuid.uuid4()
    headers = auth_headers("sales_rep", user_id=user)
    prospect = await create(client, headers, status="PROSPECT")
    stage = str(uuid.uuid4())
    draft = {
        "title": "First order",
        "amount": "5000",
        "currency": "EUR",
        "expectedCloseDate": "2030-03-31",
        "stageId": stage,
        "description": "Pilot",
    }
    r = await convert(client, prospect["id"], headers, {"opportunity": draft})
    assert r.status_code == 200, r.text
    opportunity = r.json()["opportunity"]
    opportunity_id = uuid.UUID(opportunity["opportunityId"])
    assert opportunity["title"] == "First order" and opportunity["amount"] == "5000.00"
    assert opportunity["probability"] == 25 and opportunity["ownerId"] == str(user)
    (event,) = await outbox_payloads(client, "customer.converted")
    sent = event["data"]["opportunity"]
    assert sent["opportunityId"] == str(opportunity_id)
    assert sent["title"] == "First order" and sent["currency"] == "EUR" and sent["stageId"] == stage
    assert sent["expectedCloseDate"] == "2030-03-31" and sent["ownerId"] == str(user)
    assert sent["description"] == "Pilot" and sent["probability"] == 25 and sent["amount"] == "5000.00"
    assert event["data"]["previousStatus"] == "PROSPECT"


NOT_CONVERTIBLE = ["CUSTOMER", "INACTIVE"]


async def test_only_leads_and_prospects_convert(client, auth_headers):
    for status in NOT_CONVERTIBLE:
        headers = auth_headers()
        c = await create(client, headers, status="CUSTOMER")
        if status == "INACTIVE":
            r = await client.patch(
                f"/api/v1/customers/{c['id']}",
                json={"status": "INACTIVE"},
                headers={**headers, "If-Match": "*"},
            )
            c = r.json()
        r = await convert(client, c["id"], headers)
        assert r.status_code == 409 and r.json()["code"] == "CUSTOMER_NOT_CONVERTIBLE"
        # `status` is the HTTP status (RFC 9457); the customer's own is `currentStatus`.
        assert (r.json()["status"], r.json()["currentStatus"]) == (409, status)
        assert (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json() == c
        assert await outbox_payloads(client, "customer.converted") == []


BAD_DRAFTS = [
    ({"opportunity": {}}, "opportunity.title"),
    ({"opportunity": {"title": "x", "amount": "-1"}}, "opportunity.amount"),
    ({"opportunity": {"title": "x", "amount": "1.234"}}, "opportunity.amount"),
    ({"opportunity": {"title": "x", "currency": "usd"}}, "opportunity.currency"),
    ({"opportunity": {"title": "x", "currency": "XYZ"}}, "opportunity.currency"),
    ({"opportunity": {"title": "x", "probability": 101}}, "opportunity.probability"),
    ({"opportunity": {"title": "x", "expectedCloseDate": "soon"}}, "opportunity.expectedCloseDate"),
    ({"opportunity": {"title": "x", "owner": "me"}}, "opportunity.owner"),
    ({"status": "CUSTOMER"}, "status"),
]


async def test_a_bad_draft_is_422_and_nothing_converts(client, auth_headers):
    for body, field in BAD_DRAFTS:
        headers = auth_headers()
        lead = await create(client, headers)
        r = await convert(client, lead["id"], headers, body)
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}, (body, r.json())
        assert (await client.get(f"/api/v1/customers/{lead['id']}", headers=headers)).json()[
            "status"
        ] == "LEAD"
        assert await outbox_payloads(client, "customer.converted") == []


async def test_unknown_customer_stale_version_and_permissions(client, auth_headers):
    headers = auth_headers()
    assert (await convert(client, uuid.uuid4(), headers)).status_code == 404
    lead = await create(client, headers)
    stale = await convert(client, lead["id"], {**headers, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    assert (await convert(client, lead["id"], auth_headers("nobody"))).status_code == 403
    ok = await convert(client, lead["id"], headers, {"version": 1})
    assert ok.status_code == 200


async def test_concurrent_conversions_convert_once(client, auth_headers):
    headers = auth_headers()
    lead = await create(client, headers)
    # As many as the service writes at once (admission_write_limit): none waits in the admission
    # queue, where a loaded machine's estimate of the wait could refuse one (503) instead.
    responses = await asyncio.gather(
        *(convert(client, lead["id"], headers, {"opportunity": {"title": f"O{i}"}}) for i in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200] + [409] * 3, [r.text for r in responses]
    assert len(await outbox_payloads(client, "customer.converted")) == 1


async def test_a_retried_conversion_with_an_idempotency_key_returns_the_same_opportunity(
    client, auth_headers
):
    plain = auth_headers(user_id=uuid.uuid4())
    lead = await create(client, plain)
    headers = {**plain, "Idempotency-Key": f"convert-{lead['id']}"}
    body = {"opportunity": {"title": "Deal"}}
    first = await convert(client, lead["id"], headers, body)
    again = await convert(client, lead["id"], headers, body)
    assert first.status_code == again.status_code == 200
    assert again.json()["opportunity"]["opportunityId"] == first.json()["opportunity"]["opportunityId"]
    assert len(await outbox_payloads(client, "customer.converted")) == 1
