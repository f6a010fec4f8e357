"""The product catalogue."""

import uuid

from crm_common.testing.plugin import count_rows
from pipeline_svc.models import Product


async def test_create_read_update_list_and_delete(client, auth_headers):
    h = auth_headers("sales_rep")
    body = {
        "name": "Support plan",
        "code": "SUP-1",
        "price": "99.9",
        "cost": "20",
        "currency": "EUR",
        "category": "services",
    }
    r = await client.post("/api/v1/products", json=body, headers=h)
    assert r.status_code == 201, r.text
    p = r.json()
    assert (p["price"], p["cost"], p["currency"], p["status"], p["version"]) == (
        "99.90",
        "20.00",
        "EUR",
        "ACTIVE",
        1,
    )
    assert r.headers["location"] == f"/api/v1/products/{p['id']}"
    assert (await client.get(f"/api/v1/products/{p['id']}", headers=h)).json() == p

    r = await client.patch(
        f"/api/v1/products/{p['id']}", json={"price": "89", "status": "INACTIVE", "version": 1}, headers=h
    )
    assert r.status_code == 200 and r.json()["price"] == "89.00" and r.json()["version"] == 2
    assert (
        await client.patch(f"/api/v1/products/{p['id']}", json={"price": "1", "version": 1}, headers=h)
    ).status_code == 412

    await client.post("/api/v1/products", json={"name": "Anvil", "code": "AN-1", "price": "5"}, headers=h)
    names = lambda r: [x["name"] for x in r.json()["items"]]  # noqa: E731
    assert names(await client.get("/api/v1/products", headers=h)) == ["Anvil", "Support plan"]
    assert names(await client.get("/api/v1/products", params={"q": "sup"}, headers=h)) == ["Support plan"]
    assert names(await client.get("/api/v1/products", params={"status": "ACTIVE"}, headers=h)) == ["Anvil"]
    assert names(await client.get("/api/v1/products", params={"sort": "-price"}, headers=h)) == [
        "Support plan",
        "Anvil",
    ]
    assert names(await client.get("/api/v1/products", params={"category": "services"}, headers=h)) == [
        "Support plan"
    ]

    assert (await client.delete(f"/api/v1/products/{p['id']}", headers=h)).status_code == 204
    r = await client.get(f"/api/v1/products/{p['id']}", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "PRODUCT_NOT_FOUND"


async def test_codes_are_unique_case_insensitively(client, auth_headers):
    h = auth_headers()
    assert (
        await client.post("/api/v1/products", json={"name": "A", "code": "abc", "price": "1"}, headers=h)
    ).status_code == 201
    r = await client.post("/api/v1/products", json={"name": "B", "code": "ABC", "price": "1"}, headers=h)
    assert r.status_code == 409 and r.json()["code"] == "PRODUCT_CODE_EXISTS"
    assert await count_rows(client, Product) == 1


BAD_PRODUCTS = [
    ({"name": "A", "code": "A", "price": "-1"}, "price"),
    ({"name": "A", "code": "A", "price": "cheap"}, "price"),
    ({"name": "A", "code": "A"}, "price"),
    ({"name": "A", "code": "A b", "price": "1"}, "code"),
    ({"name": "A", "code": "A", "price": "1", "currency": "eur"}, "currency"),
    ({"name": "A", "code": "A", "price": "1", "status": "GONE"}, "status"),
    ({"name": "", "code": "A", "price": "1"}, "name"),
]


async def test_bad_products_are_422(client, auth_headers):
    for body, field in BAD_PRODUCTS:
        r = await client.post("/api/v1/products", json=body, headers=auth_headers())
        assert r.status_code == 422 and field in {e["field"] for e in r.json()["errors"]}
        assert await count_rows(client, Product) == 0


async def test_unknown_product(client, auth_headers):
    r = await client.patch(f"/api/v1/products/{uuid.uuid4()}", json={"version": 1}, headers=auth_headers())
    assert r.status_code == 404


async def test_a_patch_changes_only_what_it_sends_and_null_empties_only_what_may_be_empty(
    client, auth_headers
):
    h = auth_headers("sales_rep")
    body = {"name": "Support plan", "code": "SUP-1", "price": "99.90", "cost": "20", "category": "services"}
    product = (await client.post("/api/v1/products", json=body, headers=h)).json()
    url = f"/api/v1/products/{product['id']}"
    for field in ("name", "code", "price", "currency", "status", "customFields"):
        r = await client.patch(url, json={field: None, "version": 1}, headers=h)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
    assert (await client.get(url, headers=h)).json() == product
    r = await client.patch(url, json={"cost": None, "category": None, "version": 1}, headers=h)
    assert r.status_code == 200, r.text
    changed = {"cost": None, "category": None, "version": 2, "updatedAt": r.json()["updatedAt"]}
    assert r.json() == {**product, **changed}
