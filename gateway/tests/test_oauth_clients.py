"""OAuth2 client credentials (RFC 6749 §4.4) for integrations: clients are made like API keys (secret
shown once, permissions among the creator's and intersected with theirs at every token), and the token
endpoint answers OAuth2's errors (RFC 6749 §5.2) as problem documents that carry `error`."""

import base64
from urllib.parse import quote_plus

from .conftest import ADMIN, PASSWORD, login

TOKEN = "/api/v1/auth/token"


async def new_client(gw, headers, permissions, name="billing sync") -> dict:
    r = await gw.post(
        "/api/v1/oauth-clients", json={"name": name, "permissions": permissions}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def client_token(gw, client: dict, **form):
    return await gw.post(
        TOKEN,
        data={"grant_type": "client_credentials", **form},
        headers=basic(client["clientId"], client["clientSecret"]),
    )


def assert_oauth_error(r, status: int, error: str, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == error and body["code"] == code and body["error_description"], body


async def new_user(gw, admin, email: str, roles: list[str]) -> dict:
    r = await gw.post(
        "/api/v1/users",
        json={"email": email, "fullName": email.split("@")[0], "password": PASSWORD, "roles": roles},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_client_gets_a_token_with_basic_or_form_authentication(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    client = await new_client(gw, admin, ["customers:read", "sales_access"])
    assert client["clientId"].startswith("crmc_") and client["clientSecret"].startswith("crms_")
    assert client["permissions"] == ["customers:read", "sales:read", "sales:write"]

    r = await client_token(gw, client)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 900
    assert body["scope"] == "customers:read sales:read sales:write"
    assert "refresh_token" not in body  # RFC 6749 §4.4.3
    me = await gw.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "OAuth client billing sync" and me.json()["email"] == ADMIN
    assert me.json()["permissions"] == ["customers:read", "sales:read", "sales:write"]

    in_form = await gw.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": client["clientId"],
            "client_secret": client["clientSecret"],
        },
    )
    assert in_form.status_code == 200, in_form.text

    # The secret is shown once: reads never carry it.
    listed = (await gw.get("/api/v1/oauth-clients", headers=admin)).json()
    assert [c["clientId"] for c in listed] == [client["clientId"]] and "clientSecret" not in listed[0]


async def test_client_authentication_failures_are_oauth2_errors(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    client = await new_client(gw, admin, ["customers:read"])

    wrong = await client_token(gw, {**client, "clientSecret": client["clientSecret"] + "x"})
    assert_oauth_error(wrong, 401, "invalid_client", "INVALID_CLIENT")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    unknown = await client_token(gw, {**client, "clientId": "crmc_nobody"})
    assert_oauth_error(unknown, 401, "invalid_client", "INVALID_CLIENT")
    anonymous = await gw.post(TOKEN, data={"grant_type": "client_credentials"})
    assert_oauth_error(anonymous, 401, "invalid_client", "INVALID_CLIENT")
    garbled = await gw.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic %%%"}
    )
    assert_oauth_error(garbled, 401, "invalid_client", "INVALID_CLIENT")
    both = await client_token(gw, client, client_id=client["clientId"], client_secret=client["clientSecret"])
    assert_oauth_error(both, 400, "invalid_request", "INVALID_REQUEST")

    unsupported = await gw.post(TOKEN, data={"grant_type": "authorization_code", "code": "x"})
    assert_oauth_error(unsupported, 400, "unsupported_grant_type", "UNSUPPORTED_GRANT_TYPE")
    missing = await gw.post(TOKEN, data={"grant_type": "password", "password": PASSWORD})
    assert_oauth_error(missing, 400, "invalid_request", "INVALID_REQUEST")
    bad_password = await gw.post(TOKEN, data={"username": ADMIN, "password": "not the password"})
    assert_oauth_error(bad_password, 400, "invalid_grant", "INVALID_CREDENTIALS")

    revoked = await gw.post(f"/api/v1/oauth-clients/{client['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revokedAt"] is not None
    assert_oauth_error(await client_token(gw, client), 401, "invalid_client", "INVALID_CLIENT")


async def test_scope_narrows_the_token_to_permissions_the_client_holds(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    client = await new_client(gw, admin, ["customers:read", "customers:write"])
    r = await client_token(gw, client, scope="customers:read")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "customers:read"
    me = await gw.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["permissions"] == ["customers:read"]
    assert_oauth_error(
        await client_token(gw, client, scope="sales:read"), 400, "invalid_scope", "INVALID_SCOPE"
    )
    assert_oauth_error(
        await client_token(gw, client, scope="everything"), 400, "invalid_scope", "INVALID_SCOPE"
    )


async def test_users_make_clients_for_themselves_within_their_permissions(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    await new_user(gw, admin, "rep@example.com", ["sales_rep"])
    await new_user(gw, admin, "other@example.com", ["sales_rep"])
    rep, other = await login(gw, "rep@example.com"), await login(gw, "other@example.com")

    beyond = await gw.post(
        "/api/v1/oauth-clients", json={"name": "x", "permissions": ["tickets:write"]}, headers=rep
    )
    assert beyond.status_code == 422 and beyond.json()["code"] == "PERMISSION_NOT_HELD", beyond.text
    assert (await gw.get("/api/v1/oauth-clients", headers=rep)).json() == []  # nothing half-made

    mine = await new_client(gw, rep, ["customers:read", "customers:write"])
    assert (await gw.get(f"/api/v1/oauth-clients/{mine['id']}", headers=rep)).status_code == 200
    # Someone else's client does not exist for another user; admins see and revoke everyone's.
    assert (await gw.get(f"/api/v1/oauth-clients/{mine['id']}", headers=other)).status_code == 404
    assert (await gw.post(f"/api/v1/oauth-clients/{mine['id']}/revoke", headers=other)).status_code == 404
    assert (await gw.get("/api/v1/oauth-clients", headers=other)).json() == []
    assert [c["id"] for c in (await gw.get("/api/v1/oauth-clients", headers=admin)).json()] == [mine["id"]]
    token = await client_token(gw, mine)
    assert token.status_code == 200
    held = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await gw.get("/api/v1/me", headers=held)).status_code == 200
    assert (await gw.post(f"/api/v1/oauth-clients/{mine['id']}/revoke", headers=admin)).status_code == 200
    assert (await client_token(gw, mine)).status_code == 401
    # The token it already held stops too, as an API key would.
    refused = await gw.get("/api/v1/me", headers=held)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"], refused.text


async def test_a_clients_permissions_follow_its_creator(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    second = await new_user(gw, admin, "second@example.com", ["admin"])
    client = await new_client(gw, await login(gw, "second@example.com"), ["admin"])
    assert "admin" in (await client_token(gw, client)).json()["scope"].split()

    current = (await gw.get(f"/api/v1/users/{second['id']}", headers=admin)).json()
    r = await gw.patch(
        f"/api/v1/users/{second['id']}",
        json={"roles": ["read_only"], "version": current["version"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    demoted = await client_token(gw, client)
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["scope"].split() == sorted(
        ["customers:read", "sales:read", "activities:read", "tickets:read", "campaigns:read"]
    )
    token = {"Authorization": f"Bearer {demoted.json()['access_token']}"}
    refused = await gw.post(
        "/api/v1/users",
        json={"email": "x@example.com", "fullName": "X", "roles": ["admin"]},
        headers=token,
    )
    assert refused.status_code == 403, refused.text

    current = (await gw.get(f"/api/v1/users/{second['id']}", headers=admin)).json()
    r = await gw.patch(
        f"/api/v1/users/{second['id']}",
        json={"isActive": False, "version": current["version"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert_oauth_error(await client_token(gw, client), 401, "invalid_client", "INVALID_CLIENT")


async def test_the_openapi_document_declares_the_oauth2_flows(identity_gateway):
    doc = (await identity_gateway.get("/openapi.json")).json()
    oauth2 = doc["components"]["securitySchemes"]["OAuth2"]
    assert oauth2["type"] == "oauth2"
    assert oauth2["flows"]["clientCredentials"]["tokenUrl"] == TOKEN
    assert oauth2["flows"]["password"]["tokenUrl"] == TOKEN
    assert "customers:read" in oauth2["flows"]["clientCredentials"]["scopes"]
    assert {"OAuth2": []} in doc["paths"]["/api/v1/me"]["get"]["security"]
    form = doc["components"]["schemas"]["Body_auth_token"]["properties"]
    assert set(form["grant_type"]["enum"]) == {"password", "refresh_token", "client_credentials"}
    assert {"client_id", "client_secret", "scope", "username", "password"} <= set(form)
