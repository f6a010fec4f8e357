"""Every gateway operation refuses a caller without a token, and admin-only ones a non-admin."""

import re

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

PUBLIC = {"auth_token", "auth_logout"}
ADMIN_ONLY = {
    "users_create",
    "users_update",
    "teams_create",
    "teams_update",
    "api_keys_create",
    "api_keys_list",
    "api_keys_get",
    "api_keys_revoke",
}
UUID = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
async def gateway(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN)
    app = create_embedded_app(settings, only=())
    async with running(app) as client:
        yield client, app


def operations(app):
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            yield method, re.sub(r"\{[^}]+\}", UUID, path).replace(f"views/{UUID}", "views/customer-list"), op


async def test_every_operation_needs_a_token_and_admin_ones_the_admin_permission(gateway):
    client, app = gateway
    admin = await login(client)
    await client.post(
        "/api/v1/users",
        json={
            "email": "ro@example.com",
            "fullName": "Reader",
            "password": PASSWORD,
            "roles": ["sales_manager"],
        },
        headers=admin,
    )
    manager = await login(client, "ro@example.com")
    seen = set()
    for method, path, op in operations(app):
        seen.add(op["operationId"])
        if op["operationId"] in PUBLIC:
            continue
        anonymous = await client.request(method, path, json={})
        assert anonymous.status_code == 401, (op["operationId"], anonymous.text)
        if op["operationId"] in ADMIN_ONLY:
            r = await client.request(method, path, json={}, headers=manager)
            assert r.status_code == 403, (op["operationId"], r.text)
    assert ADMIN_ONLY <= seen
    assert {
        "users_list",
        "teams_list",
        "dashboard_get",
        "views_data",
        "actions_sales_pipeline",
        "me_get",
    } <= seen


async def test_the_merged_openapi_has_the_gateway_operations(gateway):
    client, _ = gateway
    doc = (await client.get("/openapi.json")).json()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op]
    assert len(ids) == len(set(ids))
    assert {
        "users_create",
        "teams_update",
        "api_keys_revoke",
        "dashboard_get",
        "views_get",
        "actions_customer_manager",
    } <= set(ids)
