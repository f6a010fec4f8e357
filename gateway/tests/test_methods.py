"""An undeclared method is a 405 problem whose `Allow` names every method of the path, as the merged
OpenAPI document lists them, on every path of every service and of the gateway."""

import uuid

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery staple"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
async def crm(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email="boss@example.com")
    async with running(create_embedded_app(settings)) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"username": "boss@example.com", "password": PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


def concrete(path: str) -> str:
    return path.format_map(type("AnyId", (dict,), {"__missing__": lambda self, key: str(uuid.uuid4())})())


async def test_every_undeclared_method_is_a_405_listing_every_declared_one(crm):
    doc = (await crm.get("/openapi.json")).json()
    checked = 0
    for path, item in doc["paths"].items():
        declared = {m.upper() for m in item if m.upper() in METHODS}
        allow = ", ".join(sorted(declared | {"OPTIONS"}))
        url = concrete(path)
        for method in sorted(set(METHODS) - declared):
            r = await crm.request(method, url)
            assert r.status_code == 405, (method, path, r.status_code, r.text)
            assert r.headers["allow"] == allow, (method, path)
            assert r.headers["content-type"] == "application/problem+json"
            assert (r.json()["status"], r.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
            checked += 1
        r = await crm.options(url)
        assert (r.status_code, r.headers["allow"]) == (204, allow), path
    assert checked > 250


async def test_a_literal_path_is_not_taken_for_a_templated_sibling(crm):
    # DELETE /customers/merge used to reach /customers/{id} and fail there as an invalid id (422).
    r = await crm.delete("/api/v1/customers/merge")
    assert (r.status_code, r.headers["allow"]) == (405, "OPTIONS, POST")
    r = await crm.get("/api/v1/auth/token")
    assert (r.status_code, r.headers["allow"]) == (405, "OPTIONS, POST")
    # Before any other layer reads the request: a key on a method the path lacks is not checked as one.
    r = await crm.put("/api/v1/customers/merge", json={}, headers={"Idempotency-Key": "x" * 300})
    assert (r.status_code, r.headers["allow"]) == (405, "OPTIONS, POST")
    assert r.json()["requestId"] == r.headers["x-request-id"]
    # Declared methods and unknown paths are what they were.
    assert (await crm.get(f"/api/v1/customers/{uuid.uuid4()}")).status_code == 404
    assert (await crm.get("/api/v1/nothing-here")).status_code == 404
