"""API keys (shown once, hashed, scoped, revocable), rate limits and body size limits."""

import hashlib

import jwt
import pytest
import sqlalchemy as sa
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity.models import ApiKey
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login


def settings_for(tmp_path, **over) -> GatewaySettings:
    return GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN, **over)


@pytest.fixture
async def gateway(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=("customer",))) as client:
        yield client


async def new_key(gw, admin, permissions, **over):
    r = await gw.post(
        "/api/v1/api-keys", json={"name": "erp sync", "permissions": permissions} | over, headers=admin
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_key_is_shown_once_stored_hashed_and_works_as_a_bearer_credential(gateway):
    gw = gateway
    admin = await login(gw)
    created = await new_key(gw, admin, ["customer_access"])
    secret = created["key"]
    assert secret.startswith("crm_") and len(secret) > 40 and created["prefix"] == secret[:12]
    listed = (await gw.get("/api/v1/api-keys", headers=admin)).json()
    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    assert "key" not in (await gw.get(f"/api/v1/api-keys/{created['id']}", headers=admin)).json()
    async with gw._transport.app.state.runtime.db.transaction(read_only=True) as s:
        stored = (await s.execute(sa.select(ApiKey))).scalar_one()
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(stored.model_dump())

    as_key = {"Authorization": f"Bearer {secret}"}
    me = (await gw.get("/api/v1/me", headers=as_key)).json()
    # The legacy name is stored as what it stands for: read and write of customers.
    assert me["permissions"] == ["customers:read", "customers:write"] and me["roles"] == []
    created_c = await gw.post(
        "/api/v1/customers",
        json={"firstName": "Key", "lastName": "User", "email": "key@example.com"},
        headers=as_key,
    )
    assert created_c.status_code == 201, created_c.text
    assert (await gw.get("/api/v1/customers", headers=as_key)).json()["total"] == 1
    # Scoped: an admin-only gateway route and another context's permission are refused.
    assert (await gw.get("/api/v1/api-keys", headers=as_key)).status_code == 403
    assert (await gw.post("/api/v1/users", json={}, headers=as_key)).status_code in (403, 422)


async def test_revoked_unknown_and_expired_keys_are_refused(gateway):
    gw = gateway
    admin = await login(gw)
    key = await new_key(gw, admin, ["customer_access"])
    as_key = {"Authorization": f"Bearer {key['key']}"}
    assert (await gw.get("/api/v1/customers", headers=as_key)).status_code == 200
    revoked = await gw.post(f"/api/v1/api-keys/{key['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revokedAt"]
    r = await gw.get("/api/v1/customers", headers=as_key)
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    assert r.headers["content-type"] == "application/problem+json"
    assert (await gw.get("/api/v1/me", headers={"Authorization": "Bearer crm_nope"})).status_code == 401
    past = await gw.post(
        "/api/v1/api-keys",
        json={"name": "old", "permissions": ["customer_access"], "expiresAt": "2020-01-01T00:00:00Z"},
        headers=admin,
    )
    assert past.status_code == 422
    assert (
        await gw.post("/api/v1/api-keys/00000000-0000-0000-0000-000000000000/revoke", headers=admin)
    ).status_code == 404


async def test_key_permissions_are_a_subset_of_the_creators(gateway):
    gw = gateway
    admin = await login(gw)
    bad = await gw.post("/api/v1/api-keys", json={"name": "x", "permissions": ["teleport"]}, headers=admin)
    assert bad.status_code == 422
    empty = await gw.post("/api/v1/api-keys", json={"name": "x", "permissions": []}, headers=admin)
    assert empty.status_code == 422
    assert (await gw.get("/api/v1/api-keys", headers=admin)).json() == []


async def test_the_swapped_token_is_short_lived_and_names_the_key(gateway):
    gw = gateway
    admin = await login(gw)
    key = await new_key(gw, admin, ["customer_access", "sales_access"])
    front = gw._transport.app.state.front_door
    token, key_id = await front._swap(key["key"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["akid"] == key["id"] and str(key_id) == key["id"]
    assert claims["perms"] == ["customers:read", "customers:write", "sales:read", "sales:write"]
    assert claims["exp"] - claims["iat"] <= 300


async def test_rate_limit_per_credential_with_headers(tmp_path):
    app = create_embedded_app(
        settings_for(tmp_path, rate_limit_requests=5, rate_limit_window_seconds=60), only=()
    )
    async with running(app) as gw:
        admin = await login(gw)  # 1 request from the client's address
        statuses = []
        for _ in range(6):
            r = await gw.get("/api/v1/me", headers=admin)
            statuses.append(r.status_code)
            last = r
        assert statuses == [200] * 5 + [429]
        assert last.json()["code"] == "RATE_LIMITED"
        assert 0 < int(last.headers["retry-after"]) <= 60
        assert last.headers["ratelimit-remaining"] == "0" and last.headers["ratelimit-limit"] == "5"
        assert last.headers["ratelimit-policy"] == "5;w=60"
        # Another credential has its own budget; health checks are never limited.
        key = await gw.post(
            "/api/v1/api-keys", json={"name": "k", "permissions": ["admin"]}, headers=await login(gw)
        )
        assert key.status_code == 429  # the admin's token is still over its budget
        other = await gw.get("/api/v1/me")
        assert (
            other.status_code == 401 and other.headers["ratelimit-remaining"] == "2"
        )  # 2 logins + this, by address
        for _ in range(10):
            assert (await gw.get("/healthz")).status_code == 200
            assert "ratelimit-limit" not in (await gw.get("/readyz")).headers


async def test_rate_limit_can_be_switched_off(tmp_path):
    app = create_embedded_app(settings_for(tmp_path, rate_limit_enabled=False), only=())
    async with running(app) as gw:
        r = await gw.get("/api/v1/me")
        assert "ratelimit-limit" not in r.headers


async def test_body_size_limit_in_the_embedded_default(tmp_path):
    app = create_embedded_app(settings_for(tmp_path, max_body_bytes=1000), only=("customer",))
    async with running(app) as gw:
        admin = await login(gw)
        big = {"firstName": "x" * 2000, "lastName": "y", "email": "big@example.com"}
        r = await gw.post("/api/v1/customers", json=big, headers=admin)
        assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks():  # no content-length: counted as it arrives
            for _ in range(5):
                yield b"x" * 400

        r = await gw.post(
            "/api/v1/customers", content=chunks(), headers=admin | {"content-type": "application/json"}
        )
        assert r.status_code == 413, r.text
        assert (await gw.get("/api/v1/customers", headers=admin)).json()["total"] == 0
        ok = await gw.post(
            "/api/v1/customers",
            json={"firstName": "a", "lastName": "b", "email": "ab@example.com"},
            headers=admin,
        )
        assert ok.status_code == 201


async def test_services_follow_users_and_teams_made_at_the_gateway(gateway):
    """user.* and team.* reach customer-svc's directory: it accepts the new user and team, and
    refuses the team once the gateway deactivates it."""
    import uuid

    from crm_common import directory
    from crm_common.errors import ProblemError

    gw = gateway
    admin = await login(gw)
    user = (
        await gw.post(
            "/api/v1/users",
            json={
                "email": "rep@example.com",
                "fullName": "Rep One",
                "password": PASSWORD,
                "roles": ["sales_rep"],
            },
            headers=admin,
        )
    ).json()
    team = (await gw.post("/api/v1/teams", json={"name": "Field", "type": "SALES"}, headers=admin)).json()
    customer_app = gw._transport.app.state.services["customer"]

    async def known():
        async with customer_app.state.runtime.db.transaction() as s:
            names = await directory.user_names(s, [uuid.UUID(user["id"])])
            await directory.require_active_team(s, uuid.UUID(team["id"]), field="teamId")
        return names == {uuid.UUID(user["id"]): "Rep One"}

    async def known_or_false():
        try:
            return await known()
        except ProblemError:
            return False

    assert await eventually(known_or_false, timeout=5)
    r = await gw.patch(f"/api/v1/teams/{team['id']}", json={"isActive": False, "version": 1}, headers=admin)
    assert r.status_code == 200

    async def refused():
        try:
            await known()
        except ProblemError:
            return True
        return False

    assert await eventually(refused, timeout=5)
