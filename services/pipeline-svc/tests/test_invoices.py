"""Invoices: race-free numbers, manual drafts, the status machine."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.testing.plugin import admitted, count_rows, outbox_payloads
from pipeline_svc.models import Invoice


@pytest.fixture
def new_invoice(client, auth_headers, new_customer):
    async def make(**fields):
        if "customerId" not in fields:
            fields["customerId"] = str(await new_customer())
        body = {"lines": [{"description": "Consulting", "quantity": "2", "unitPrice": "150.00"}], **fields}
        return await client.post("/api/v1/invoices", json=body, headers=auth_headers("sales_rep"))

    return make


async def test_a_manual_draft_invoice(client, auth_headers, new_invoice):
    r = await new_invoice(
        currency="CHF",
        dueDate="2026-09-30",
        lines=[
            {"description": "Consulting", "quantity": "2", "unitPrice": "150.00"},
            {"description": "Travel", "unitPrice": "80.55", "discount": "50"},
        ],
    )
    assert r.status_code == 201, r.text
    invoice = r.json()
    year = datetime.now(UTC).year
    assert re.fullmatch(rf"INV-{year}-\d{{6}}", invoice["invoiceNumber"])
    assert (
        invoice["status"] == "DRAFT" and invoice["currency"] == "CHF" and invoice["dueDate"] == "2026-09-30"
    )
    # 300.00 + 40.275 -> 40.28
    assert [line["lineTotal"] for line in invoice["lines"]] == ["300.00", "40.28"]
    assert [line["position"] for line in invoice["lines"]] == [1, 2]
    assert invoice["total"] == "340.28"
    assert r.headers["location"] == f"/api/v1/invoices/{invoice['id']}"
    assert (await client.get(f"/api/v1/invoices/{invoice['id']}", headers=auth_headers())).json() == invoice
    (event,) = await outbox_payloads(client, "invoice.created")
    assert event["data"]["total"] == "340.28" and event["data"]["currency"] == "CHF"
    assert event["data"]["dueDate"] == "2026-09-30" and event["data"]["opportunityId"] is None


async def test_concurrent_invoices_get_consecutive_numbers(client, auth_headers, new_customer):
    customer = str(await new_customer())
    body = {"customerId": customer, "lines": [{"description": "x", "unitPrice": "1"}]}
    responses = await asyncio.gather(
        *(
            admitted(lambda: client.post("/api/v1/invoices", json=body, headers=auth_headers()))
            for _ in range(20)
        )
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses if r.status_code != 201]
    numbers = sorted(int(r.json()["invoiceNumber"][-6:]) for r in responses)
    assert numbers == list(range(1, 21))


async def test_the_status_machine(client, auth_headers, new_invoice):
    invoice = (await new_invoice()).json()
    url = f"/api/v1/invoices/{invoice['id']}"
    h = auth_headers()
    r = await client.post(f"{url}/pay", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "INVALID_INVOICE_TRANSITION"
    r = await client.post(f"{url}/issue", headers=h)
    today = datetime.now(UTC).date()
    assert r.status_code == 200 and r.json()["status"] == "ISSUED"
    assert r.json()["issueDate"] == today.isoformat()
    assert r.json()["dueDate"] == (today + timedelta(days=30)).isoformat()
    r = await client.post(f"{url}/pay", json={"version": 1}, headers=h)
    assert r.status_code == 412
    r = await client.post(f"{url}/pay", headers={**h, "If-Match": r.headers.get("etag", 'W/"2"')})
    assert r.status_code == 200 and r.json()["status"] == "PAID" and r.json()["paidDate"] == today.isoformat()
    r = await client.post(f"{url}/void", headers=h)
    assert r.status_code == 409
    other = (await new_invoice()).json()
    r = await client.post(f"/api/v1/invoices/{other['id']}/void", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "VOID"


async def test_invoice_rules_and_bad_input(client, auth_headers, new_invoice, new_opportunity, new_customer):
    r = await new_invoice(customerId=str(uuid.uuid4()))
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_CUSTOMER"
    r = await new_invoice(opportunityId=str(uuid.uuid4()))
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_OPPORTUNITY"
    o = await new_opportunity(currency="EUR")
    r = await new_invoice(opportunityId=o["id"])
    assert r.status_code == 422 and r.json()["code"] == "OPPORTUNITY_CUSTOMER_MISMATCH"
    r = await new_invoice(opportunityId=o["id"], customerId=o["customerId"], currency="USD")
    assert r.status_code == 422 and r.json()["code"] == "CURRENCY_MISMATCH"
    for fields in (
        {"lines": []},
        {"lines": [{"description": "x", "unitPrice": "-1"}]},
        {"lines": [{"description": "", "unitPrice": "1"}]},
        {"currency": "ABC"},
        {"dueDate": "tomorrow"},
    ):
        r = await new_invoice(**fields)
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", fields
    assert await count_rows(client, Invoice) == 0
    r = await new_invoice(opportunityId=o["id"], customerId=o["customerId"], currency="EUR")
    assert r.status_code == 201


async def test_list_filters(client, auth_headers, new_invoice, new_customer):
    a, b = str(await new_customer()), str(await new_customer())
    first = (await new_invoice(customerId=a)).json()
    await new_invoice(customerId=a)
    await new_invoice(customerId=b)
    await client.post(f"/api/v1/invoices/{first['id']}/issue", headers=auth_headers())
    h = auth_headers("sales_rep")
    page = (await client.get("/api/v1/invoices", params={"customerId": a}, headers=h)).json()
    assert page["total"] == 2
    issued = (await client.get("/api/v1/invoices", params={"status": "ISSUED"}, headers=h)).json()
    assert [i["id"] for i in issued["items"]] == [first["id"]]
    ordered = (await client.get("/api/v1/invoices", params={"sort": "invoiceNumber"}, headers=h)).json()
    numbers = [i["invoiceNumber"] for i in ordered["items"]]
    assert numbers == sorted(numbers) and len(numbers) == 3


async def test_status_changes_publish_invoice_status_changed(client, auth_headers, new_invoice):
    invoice = (await new_invoice()).json()
    url = f"/api/v1/invoices/{invoice['id']}"
    h = auth_headers()
    assert (await client.post(f"{url}/pay", headers=h)).status_code == 409  # refused: nothing published
    assert (await client.post(f"{url}/issue", headers=h)).status_code == 200
    assert (await client.post(f"{url}/pay", headers=h)).status_code == 200
    published = await outbox_payloads(client, "invoice.status_changed")
    assert [
        (e["subject"], e["data"]["fromStatus"], e["data"]["status"], e["sequence"]) for e in published
    ] == [
        (invoice["id"], "DRAFT", "ISSUED", 2),
        (invoice["id"], "ISSUED", "PAID", 3),
    ]
    assert published[-1]["data"]["paidDate"] == datetime.now(UTC).date().isoformat()
    assert published[-1]["data"]["total"] == invoice["total"]
