"""The gateway in front of the services, as the embedded default runs it (one process)."""

import uuid

import jwt
import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def gateway(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email="boss@example.com")
    app = create_embedded_app(settings)
    async with running(app) as client:
        yield client


async def token(client, username="boss@example.com", password=PASSWORD):
    return await client.post("/api/v1/auth/token", data={"username": username, "password": password})


async def test_password_flow_gives_a_short_lived_signed_token(gateway):
    r = await token(gateway)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= 3600
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["email"] == "boss@example.com"
    assert "admin" in claims["perms"]
    me = await gateway.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "boss@example.com"
    assert "admin" in me.json()["roles"]


@pytest.mark.parametrize(
    ("username", "password"),
    [("boss@example.com", "wrong"), ("nobody@example.com", PASSWORD), ("BOSS@example.com", "")],
)
async def test_bad_credentials_are_refused_without_saying_which_part(gateway, username, password):
    r = await token(gateway, username, password)
    assert r.status_code in (400, 422)
    assert r.headers["content-type"] == "application/problem+json"
    if r.status_code == 400:
        assert r.json()["code"] == "INVALID_CREDENTIALS"
        assert r.json()["error"] == "invalid_grant"


async def test_email_is_matched_case_insensitively(gateway):
    assert (await token(gateway, "Boss@Example.com")).status_code == 200


async def test_the_slice_through_the_gateway(gateway):
    access = (await token(gateway)).json()["access_token"]
    headers = {"Authorization": f"Bearer {access}", "X-Request-ID": "slice-1"}
    created = await gateway.post(
        "/api/v1/customers",
        json={"firstName": "Grace", "lastName": "Hopper", "email": "g@navy.example"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == "slice-1"
    customer = created.json()

    async def note():
        r = await gateway.get("/api/v1/activities", params={"customerId": customer["id"]}, headers=headers)
        return r.json()["items"]

    items = await eventually(note, timeout=5)
    assert [n["subject"] for n in items] == ["Customer created"]
    assert items[0]["description"] == "New individual customer created: Grace Hopper"
    listed = await gateway.get("/api/v1/customers", headers=headers)
    assert listed.json()["total"] == 1


async def test_services_check_the_token_behind_the_gateway(gateway):
    assert (await gateway.get("/api/v1/customers")).status_code == 401
    forged = jwt.encode({"sub": str(uuid.uuid4()), "perms": ["admin"]}, key=None, algorithm="none")
    r = await gateway.get("/api/v1/customers", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"


async def test_unknown_paths_are_problems(gateway):
    r = await gateway.get("/api/v1/unicorns")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_every_service_is_routed(gateway):
    # Without a token each service answers for itself (401), which a gateway-side 404 would not.
    for path in (
        "/api/v1/customers",
        "/api/v1/opportunities",
        "/api/v1/activities",
        "/api/v1/tickets",
        "/api/v1/campaigns/x",
        "/api/v1/webhooks",
    ):
        r = await gateway.get(path)
        assert r.headers["content-type"] == "application/problem+json"
        assert not r.json().get("detail", "").startswith("No resource at"), path
    assert (await gateway.get("/readyz")).status_code == 200


async def test_one_openapi_document_covers_every_service(gateway):
    doc = (await gateway.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert {
        "/api/v1/auth/token",
        "/api/v1/me",
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/activities",
        "/api/v1/webhooks",
    } <= set(doc["paths"])
    operation_ids = [
        op["operationId"] for item in doc["paths"].values() for op in item.values() if "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert {"customers_create", "customers_list", "customers_get", "activities_list", "auth_token"} <= set(
        operation_ids
    )
    assert "Problem" in doc["components"]["schemas"]
    assert (await gateway.get("/docs")).status_code == 200


async def test_the_admin_is_created_once(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD)
    async with running(create_embedded_app(settings)) as client:
        assert (await token(client, "admin@example.com")).status_code == 200
    changed = GatewaySettings(data_dir=tmp_path, admin_password="a different one")
    async with running(create_embedded_app(changed)) as client:
        # The first start's admin stays; settings do not overwrite an existing user.
        assert (await token(client, "admin@example.com")).status_code == 200
        assert (await token(client, "admin@example.com", "a different one")).status_code == 400


async def test_the_event_catalogue_is_served_and_docs_asyncapi_is_current(gateway):
    import json
    from pathlib import Path

    served = (await gateway.get("/asyncapi.json")).json()
    checked_in = json.loads((Path(__file__).parents[2] / "docs" / "asyncapi.json").read_text())
    assert served == checked_in, (
        "docs/asyncapi.json is stale: regenerate it with `crm asyncapi > docs/asyncapi.json`"
    )


async def test_services_learn_the_admin_from_the_user_created_event(gateway):
    from crm_common import directory

    access = (await token(gateway)).json()["access_token"]
    me = (await gateway.get("/api/v1/me", headers={"Authorization": f"Bearer {access}"})).json()
    services = gateway._transport.app.state.services

    async def known_everywhere():
        for app in services.values():
            async with app.state.runtime.db.transaction() as s:
                if await directory.user_names(s, [uuid.UUID(me["id"])]) != {
                    uuid.UUID(me["id"]): "Administrator"
                }:
                    return False
        return True

    assert await eventually(known_everywhere, timeout=5)
