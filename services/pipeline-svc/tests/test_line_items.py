"""Line items and the amount rule: computed from the line items until set by hand."""

import uuid

import pytest
from crm_common.testing.plugin import count_rows, outbox_payloads
from pipeline_svc.models import OpportunityProduct


@pytest.fixture
def add(client, auth_headers):
    async def go(opportunity: dict, product: dict, **fields):
        return await client.post(
            f"/api/v1/opportunities/{opportunity['id']}/products",
            json={"productId": product["id"], **fields},
            headers=auth_headers("sales_rep"),
        )

    return go


async def test_line_items_recompute_the_amount(client, auth_headers, add, new_opportunity, new_product):
    o = await new_opportunity()
    seat, setup = await new_product(name="Seat", price="19.99"), await new_product(name="Setup", price="500")
    r = await add(o, seat, quantity="3", discount="15")
    assert r.status_code == 201, r.text
    body = r.json()
    (item,) = body["lineItems"]
    # 3 x 19.99 = 59.97, 15% off = 50.9745 -> 50.97 (half up, to the cent)
    assert item["productName"] == "Seat" and item["productCode"] == seat["code"]
    assert (item["quantity"], item["unitPrice"], item["discount"], item["lineTotal"]) == (
        "3.00",
        "19.99",
        "15.00",
        "50.97",
    )
    assert item["currency"] == "USD"
    assert body["amount"] == "50.97" and body["amountManual"] is False and body["version"] == 2

    body = (await add(o, setup)).json()
    assert body["amount"] == "550.97" and [i["productName"] for i in body["lineItems"]] == ["Seat", "Setup"]

    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}/products/{setup['id']}",
        json={"unitPrice": "450.00"},
        headers=auth_headers(),
    )
    assert r.status_code == 200 and r.json()["amount"] == "500.97"

    r = await client.delete(f"/api/v1/opportunities/{o['id']}/products/{seat['id']}", headers=auth_headers())
    assert r.status_code == 200 and r.json()["amount"] == "450.00" and len(r.json()["lineItems"]) == 1

    events = await outbox_payloads(client, "opportunity.updated")
    assert [e["data"]["changes"] for e in events] == [
        {"lineItems": 1, "amount": "50.97"},
        {"lineItems": 2, "amount": "550.97"},
        {"lineItems": 2, "amount": "500.97"},
        {"lineItems": 1, "amount": "450.00"},
    ]
    assert [e["sequence"] for e in events] == [2, 3, 4, 5]
    assert events[-1]["data"]["amount"] == "450.00"


async def test_a_hand_set_amount_is_kept_until_it_is_cleared(
    client, auth_headers, add, new_opportunity, new_product
):
    o = await new_opportunity(amount="1000.00")
    product = await new_product(price="100")
    body = (await add(o, product, quantity=2)).json()
    assert body["amount"] == "1000.00" and body["amountManual"] is True
    url = f"/api/v1/opportunities/{o['id']}"
    r = await client.patch(url, json={"amount": None, "version": body["version"]}, headers=auth_headers())
    assert r.status_code == 200
    assert r.json()["amount"] == "200.00" and r.json()["amountManual"] is False
    r = await client.patch(
        url, json={"amount": "150", "version": r.json()["version"]}, headers=auth_headers()
    )
    assert r.json()["amount"] == "150.00" and r.json()["amountManual"] is True
    r = await client.patch(f"{url}/products/{product['id']}", json={"quantity": 5}, headers=auth_headers())
    assert r.json()["amount"] == "150.00" and r.json()["lineItems"][0]["lineTotal"] == "500.00"


async def test_line_item_rules(client, auth_headers, add, new_opportunity, new_product):
    o = await new_opportunity(currency="EUR")
    usd = await new_product(price="10", currency="USD")
    r = await add(o, usd)
    assert r.status_code == 422 and r.json()["code"] == "CURRENCY_MISMATCH"
    assert r.json()["errors"][0]["field"] == "unitPrice"
    r = await add(o, usd, unitPrice="9.00")  # priced in the opportunity's currency explicitly
    assert r.status_code == 201 and r.json()["lineItems"][0]["currency"] == "EUR"
    dup = await add(o, usd, unitPrice="9.00")
    assert dup.status_code == 409 and dup.json()["code"] == "LINE_ITEM_EXISTS"

    retired = await new_product(status="DISCONTINUED", currency="EUR")
    r = await add(o, retired)
    assert r.status_code == 422 and r.json()["code"] == "PRODUCT_NOT_ACTIVE"
    r = await add(o, {"id": str(uuid.uuid4())})
    assert r.status_code == 422 and r.json()["code"] == "UNKNOWN_PRODUCT"
    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}/products/{retired['id']}",
        json={"quantity": 1},
        headers=auth_headers(),
    )
    assert r.status_code == 404 and r.json()["code"] == "LINE_ITEM_NOT_FOUND"
    # The currency cannot change under priced line items.
    r = await client.patch(
        f"/api/v1/opportunities/{o['id']}", json={"currency": "USD", "version": 2}, headers=auth_headers()
    )
    assert r.status_code == 409 and r.json()["code"] == "OPPORTUNITY_HAS_LINE_ITEMS"
    assert await count_rows(client, OpportunityProduct) == 1


BAD_LINE_ITEMS = [
    ({"quantity": 0}, "quantity"),
    ({"quantity": "-1"}, "quantity"),
    ({"quantity": "1.005"}, "quantity"),
    ({"discount": "101"}, "discount"),
    ({"discount": "-1"}, "discount"),
    ({"unitPrice": "-3"}, "unitPrice"),
    ({"unitPrice": "ten"}, "unitPrice"),
    ({"lineTotal": "5"}, "lineTotal"),
]


async def test_bad_line_items_are_422_and_write_nothing(client, add, new_opportunity, new_product):
    for fields, field in BAD_LINE_ITEMS:
        o, product = await new_opportunity(), await new_product()
        r = await add(o, product, **fields)
        assert r.status_code == 422 and field in {e["field"] for e in r.json()["errors"]}
        assert await count_rows(client, OpportunityProduct) == 0


async def test_closed_opportunities_keep_their_line_items(
    client, auth_headers, add, new_opportunity, new_product
):
    o, product = await new_opportunity(), await new_product()
    await client.post(
        f"/api/v1/opportunities/{o['id']}/lose", json={"lostReason": "no budget"}, headers=auth_headers()
    )
    r = await add(o, product)
    assert r.status_code == 409 and r.json()["code"] == "OPPORTUNITY_NOT_OPEN"


async def test_a_product_on_a_line_item_cannot_be_deleted(
    client, auth_headers, add, new_opportunity, new_product
):
    o, product = await new_opportunity(), await new_product()
    await add(o, product)
    r = await client.delete(f"/api/v1/products/{product['id']}", headers=auth_headers())
    assert r.status_code == 409 and r.json()["code"] == "PRODUCT_IN_USE"


async def test_a_line_item_patch_changes_only_what_it_sends_and_refuses_null_for_its_numbers(
    client, auth_headers, add, new_opportunity, new_product
):
    o, product = await new_opportunity(), await new_product(price="10")
    r = await add(o, product, quantity="2", discount="5", description="Two seats")
    assert r.status_code == 201, r.text
    url = f"/api/v1/opportunities/{o['id']}/products/{product['id']}"
    (item,) = r.json()["lineItems"]
    for field in ("quantity", "unitPrice", "discount"):
        r = await client.patch(url, json={field: None}, headers=auth_headers())
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
    got = await client.get(f"/api/v1/opportunities/{o['id']}", headers=auth_headers())
    assert got.json()["lineItems"] == [item]
    r = await client.patch(url, json={"description": None}, headers=auth_headers())
    assert r.status_code == 200, r.text
    assert r.json()["lineItems"] == [{**item, "description": None}]
