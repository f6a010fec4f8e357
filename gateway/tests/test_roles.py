"""Role definitions are data: admins read and change each role's permissions and record scopes, and a
change reaches the role's holders (their tokens are refused, the next one carries the new definition)."""

import jwt

from .conftest import PASSWORD, login
from .test_sessions import new_user, until


async def test_roles_hold_the_documented_defaults(identity_gateway):
    gateway = identity_gateway
    admin = await login(gateway)
    r = await gateway.get("/api/v1/roles", headers=admin)
    assert r.status_code == 200, r.text
    roles = {role["name"]: role for role in r.json()}
    assert set(roles) == {"admin", "sales_manager", "sales_rep", "support_agent", "marketer", "read_only"}
    rep = roles["sales_rep"]
    assert {c: s["read"] for c, s in rep["scopes"].items()} == {
        "customers": "team",
        "sales": "team",
        "activities": "team",
        "tickets": "team",
        "campaigns": "team",
    }
    assert roles["support_agent"]["scopes"]["tickets"] == {"read": "all", "write": "all"}
    assert roles["support_agent"]["scopes"]["customers"] == {"read": "team", "write": "team"}
    assert roles["marketer"]["scopes"]["campaigns"] == {"read": "all", "write": "all"}
    assert roles["read_only"]["scopes"]["sales"]["read"] == "all"
    assert "customers:write" not in roles["read_only"]["permissions"]
    assert all(s == {"read": "all", "write": "all"} for s in roles["admin"]["scopes"].values())

    one = await gateway.get("/api/v1/roles/sales_rep", headers=admin)
    assert one.status_code == 200 and one.json() == rep and one.headers["ETag"] == f'W/"{rep["version"]}"'
    assert (await gateway.get("/api/v1/roles/nobody", headers=admin)).status_code == 422


async def test_only_admins_read_or_change_roles(identity_gateway):
    gateway = identity_gateway
    admin = await login(gateway)
    await new_user(gateway, admin, "rep@example.com", ["sales_rep"])
    rep = await login(gateway, "rep@example.com")
    assert (await gateway.get("/api/v1/roles", headers=rep)).status_code == 403
    body = {"permissions": ["admin"], "scopes": {}, "version": 1}
    r = await gateway.put("/api/v1/roles/sales_rep", json=body, headers=rep)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"


async def test_a_token_carries_its_roles_scopes_and_me_shows_them(identity_gateway):
    gateway = identity_gateway
    admin = await login(gateway)
    await new_user(gateway, admin, "sup@example.com", ["support_agent"])
    token = (await login(gateway, "sup@example.com"))["Authorization"].split()[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["scp"]["tickets"] == ["all", "all"] and claims["scp"]["customers"] == ["team", "team"]
    me = (await gateway.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["scopes"]["tickets"] == {"read": "all", "write": "all"}
    assert me["scopes"]["sales"] == {"read": "team", "write": "team"}


def _scopes(read: str, write: str) -> dict:
    return {
        c: {"read": read, "write": write}
        for c in ("customers", "sales", "activities", "tickets", "campaigns")
    }


async def test_a_role_change_signs_its_holders_out_and_their_next_token_carries_it(identity_gateway):
    gateway = identity_gateway
    gw = gateway
    admin = await login(gw)
    await new_user(gw, admin, "rep@example.com", ["sales_rep"])
    await new_user(gw, admin, "other@example.com", ["marketer"])
    rep = await login(gw, "rep@example.com")
    other = await login(gw, "other@example.com")
    role = (await gw.get("/api/v1/roles/sales_rep", headers=admin)).json()

    body = {"permissions": role["permissions"], "scopes": _scopes("own", "own")}
    missing = await gw.put("/api/v1/roles/sales_rep", json=body, headers=admin)
    assert missing.status_code == 428
    stale = await gw.put("/api/v1/roles/sales_rep", json={**body, "version": 99}, headers=admin)
    assert stale.status_code == 412
    wider = await gw.put(
        "/api/v1/roles/sales_rep",
        json={**body, "scopes": _scopes("own", "all"), "version": role["version"]},
        headers=admin,
    )
    assert wider.status_code == 422 and wider.json()["code"] == "INVALID_ROLE"
    partial = {**body, "scopes": {"customers": {"read": "all", "write": "all"}}, "version": role["version"]}
    assert (await gw.put("/api/v1/roles/sales_rep", json=partial, headers=admin)).status_code == 422
    demote = {"permissions": ["customers:read"], "scopes": _scopes("all", "all"), "version": 1}
    r = await gw.put("/api/v1/roles/admin", json=demote, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "INVALID_ROLE"
    # Nothing changed by the refused ones.
    assert (await gw.get("/api/v1/roles/sales_rep", headers=admin)).json() == role

    r = await gw.put("/api/v1/roles/sales_rep", json={**body, "version": role["version"]}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["scopes"]["customers"] == {"read": "own", "write": "own"}
    assert r.json()["version"] == role["version"] + 1

    _, refused = await until(lambda: gw.get("/api/v1/me", headers=rep), 401)
    assert refused.status_code == 401 and refused.json()["code"] == "TOKEN_REVOKED"
    # Holders of other roles keep their tokens.
    assert (await gw.get("/api/v1/me", headers=other)).status_code == 200
    me = (await gw.get("/api/v1/me", headers=await login(gw, "rep@example.com"))).json()
    assert me["scopes"]["customers"] == {"read": "own", "write": "own"}


async def test_a_role_losing_a_permission_takes_it_from_its_holders_keys_and_users(identity_gateway):
    gateway = identity_gateway
    gw = gateway
    admin = await login(gw)
    role = (await gw.get("/api/v1/roles/read_only", headers=admin)).json()
    body = {
        "permissions": [p for p in role["permissions"] if p != "tickets:read"],
        "scopes": role["scopes"],
        "version": role["version"],
    }
    assert (await gw.put("/api/v1/roles/read_only", json=body, headers=admin)).status_code == 200
    user = await new_user(gw, admin, "ro@example.com", ["read_only"])
    assert "tickets:read" not in user["permissions"] and "customers:read" in user["permissions"]
    me = (await gw.get("/api/v1/me", headers=await login(gw, "ro@example.com", PASSWORD))).json()
    assert "tickets:read" not in me["permissions"]
