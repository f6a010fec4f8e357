"""Users and teams: admin-only writes, reads for anyone signed in, versions, events."""

import asyncio
import threading
import uuid

import sqlalchemy as sa
from crm_common.auth import ROLE_PERMISSIONS
from crm_common.events.tables import outbox
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity import service
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login


async def outbox_events(client, routing_key: str) -> list[dict]:
    db = client._transport.app.state.runtime.db
    async with db.transaction(read_only=True) as s:
        rows = (await s.execute(sa.select(outbox.c.payload).where(outbox.c.routing_key == routing_key))).all()
    return [r[0] for r in rows]


def user_body(**over):
    return {
        "email": "ada@example.com",
        "fullName": "Ada Lovelace",
        "password": PASSWORD,
        "roles": ["sales_rep"],
    } | over


async def test_admin_creates_a_user_who_can_sign_in_and_the_event_is_published(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    r = await gw.post("/api/v1/users", json=user_body(timeZone="Europe/Paris"), headers=admin)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == 'W/"1"'
    user = r.json()
    assert user["roles"] == ["sales_rep"] and user["version"] == 1
    assert user["permissions"] == sorted(ROLE_PERMISSIONS["sales_rep"])
    assert "customers:write" in user["permissions"] and "tickets:write" not in user["permissions"]
    assert "password" not in user and "passwordHash" not in user
    me = await gw.get("/api/v1/me", headers=await login(gw, "ada@example.com"))
    assert me.json()["id"] == user["id"]
    events = [e for e in await outbox_events(gw, "user.created") if e["subject"] == user["id"]]
    assert len(events) == 1
    assert events[0]["sequence"] == 1
    assert (
        events[0]["data"]["fullName"] == "Ada Lovelace"
        or events[0]["data"].get("full_name") == "Ada Lovelace"
    )


async def test_user_writes_are_admin_only_and_reads_are_for_anyone_signed_in(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    rep = (await gw.post("/api/v1/users", json=user_body(), headers=admin)).json()
    as_rep = await login(gw, "ada@example.com")
    assert (await gw.get("/api/v1/users", headers=as_rep)).json()["total"] == 2
    reps = (await gw.get("/api/v1/users", params={"role": "sales_rep"}, headers=admin)).json()
    assert reps["total"] == 1 and [u["id"] for u in reps["items"]] == [rep["id"]]
    assert (await gw.get("/api/v1/users", params={"role": "wizard"}, headers=admin)).status_code == 422
    # Roles are not the directory's to tell: only admins filter by them (test_headers_and_directory).
    assert (await gw.get("/api/v1/users", params={"role": "sales_rep"}, headers=as_rep)).status_code == 403
    found = (await gw.get("/api/v1/users", params={"q": "LOVEL"}, headers=as_rep)).json()
    assert [u["id"] for u in found["items"]] == [rep["id"]]
    assert (await gw.get(f"/api/v1/users/{rep['id']}", headers=as_rep)).status_code == 200
    assert (await gw.get("/api/v1/teams", headers=as_rep)).status_code == 200
    refused = [
        await gw.post("/api/v1/users", json=user_body(email="x@example.com"), headers=as_rep),
        await gw.patch(f"/api/v1/users/{rep['id']}", json={"roles": ["admin"], "version": 1}, headers=as_rep),
        await gw.post("/api/v1/teams", json={"name": "T", "type": "SALES"}, headers=as_rep),
        await gw.post(
            "/api/v1/api-keys", json={"name": "k", "permissions": ["customer_access"]}, headers=as_rep
        ),
        await gw.get("/api/v1/api-keys", headers=as_rep),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert all(r.json()["code"] == "FORBIDDEN" for r in refused)
    for path in ("/api/v1/users", "/api/v1/teams", f"/api/v1/users/{rep['id']}"):
        assert (await gw.get(path)).status_code == 401
    assert (await gw.get("/api/v1/users", headers=admin)).json()["total"] == 2  # nothing written


async def test_user_validation_and_conflicts(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    assert (await gw.post("/api/v1/users", json=user_body(), headers=admin)).status_code == 201
    dup = await gw.post("/api/v1/users", json=user_body(email="ADA@example.com"), headers=admin)
    assert dup.status_code == 409 and dup.json()["code"] == "USER_EMAIL_EXISTS"
    for bad in (
        user_body(email="b@example.com", roles=["wizard"]),
        user_body(email="b@example.com", roles=[]),
        user_body(email="not-an-email"),
        user_body(email="b@example.com", password="short"),
        user_body(email="b@example.com", nickname="x"),
    ):
        r = await gw.post("/api/v1/users", json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    tz = await gw.post(
        "/api/v1/users", json=user_body(email="b@example.com", timeZone="Mars/Base"), headers=admin
    )
    assert tz.status_code == 422 and tz.json()["code"] == "INVALID_TIME_ZONE"
    assert (await gw.get("/api/v1/users", headers=admin)).json()["total"] == 2
    assert (await gw.get(f"/api/v1/users/{uuid.uuid4()}", headers=admin)).status_code == 404


async def test_user_update_needs_the_version_and_publishes_user_updated(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    user = (await gw.post("/api/v1/users", json=user_body(), headers=admin)).json()
    url = f"/api/v1/users/{user['id']}"
    missing = await gw.patch(url, json={"fullName": "Ada King"}, headers=admin)
    assert missing.status_code == 428
    ok = await gw.patch(
        url, json={"fullName": "Ada King", "roles": ["sales_manager"]}, headers=admin | {"If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["version"] == 2 and ok.headers["etag"] == 'W/"2"'
    stale = await gw.patch(url, json={"fullName": "Nope", "version": 1}, headers=admin)
    assert stale.status_code == 412 and stale.json()["code"] == "VERSION_CONFLICT"
    off = await gw.patch(url, json={"isActive": False, "version": 2}, headers=admin)
    assert off.status_code == 200
    # An inactive user cannot sign in any more.
    r = await gw.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 400
    events = [e for e in await outbox_events(gw, "user.updated") if e["subject"] == user["id"]]
    assert sorted(e["sequence"] for e in events) == [2, 3]
    assert (await gw.get(url, headers=admin)).json()["fullName"] == "Ada King"


async def test_the_last_active_admin_cannot_be_demoted_or_deactivated(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    me = (await gw.get("/api/v1/me", headers=admin)).json()
    url = f"/api/v1/users/{me['id']}"
    for body in ({"roles": ["read_only"], "version": 1}, {"isActive": False, "version": 1}):
        r = await gw.patch(url, json=body, headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "LAST_ADMIN"
    other = (await gw.post("/api/v1/users", json=user_body(roles=["admin"]), headers=admin)).json()
    assert (
        await gw.patch(url, json={"roles": ["read_only"], "version": 1}, headers=admin)
    ).status_code == 200
    assert other["roles"] == ["admin"]


async def test_teams_with_manager_and_members(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    ada = (await gw.post("/api/v1/users", json=user_body(), headers=admin)).json()
    bob = (
        await gw.post("/api/v1/users", json=user_body(email="bob@example.com", fullName="Bob"), headers=admin)
    ).json()
    r = await gw.post(
        "/api/v1/teams",
        json={
            "name": "EMEA Sales",
            "type": "SALES",
            "managerId": ada["id"],
            "memberIds": [ada["id"], bob["id"]],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    team = r.json()
    assert team["managerName"] == "Ada Lovelace" and team["isActive"] is True and team["version"] == 1
    assert sorted(team["memberIds"]) == sorted([ada["id"], bob["id"]])
    assert (await gw.get(f"/api/v1/users/{bob['id']}", headers=admin)).json()["teamIds"] == [team["id"]]
    listed = await gw.get("/api/v1/teams", params={"type": "SALES", "memberId": bob["id"]}, headers=admin)
    assert listed.json()["total"] == 1
    assert (await gw.get("/api/v1/teams", params={"type": "SUPPORT"}, headers=admin)).json()["total"] == 0

    url = f"/api/v1/teams/{team['id']}"
    upd = await gw.patch(
        url, json={"memberIds": [bob["id"]], "managerId": None}, headers=admin | {"If-Match": 'W/"1"'}
    )
    assert upd.status_code == 200, upd.text
    assert (
        upd.json()["memberIds"] == [bob["id"]]
        and upd.json()["managerId"] is None
        and upd.json()["version"] == 2
    )
    assert (await gw.patch(url, json={"isActive": False, "version": 1}, headers=admin)).status_code == 412
    created = [e for e in await outbox_events(gw, "team.created") if e["subject"] == team["id"]]
    updated = [e for e in await outbox_events(gw, "team.updated") if e["subject"] == team["id"]]
    assert [e["sequence"] for e in created] == [1] and [e["sequence"] for e in updated] == [2]
    data = updated[0]["data"]
    assert data.get("memberIds", data.get("member_ids")) == [bob["id"]]


async def test_team_bad_inputs_write_nothing(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    assert (
        await gw.post("/api/v1/teams", json={"name": "Support", "type": "SUPPORT"}, headers=admin)
    ).status_code == 201
    cases = [
        ({"name": "support", "type": "SUPPORT"}, 409, "TEAM_NAME_EXISTS"),
        ({"name": "X", "type": "ENGINEERING"}, 422, None),
        ({"name": "X", "type": "SALES", "managerId": str(uuid.uuid4())}, 422, "USER_NOT_FOUND"),
        ({"name": "X", "type": "SALES", "memberIds": [str(uuid.uuid4())]}, 422, "USER_NOT_FOUND"),
        ({"type": "SALES"}, 422, None),
    ]
    for body, status, code in cases:
        r = await gw.post("/api/v1/teams", json=body, headers=admin)
        assert r.status_code == status, (body, r.text)
        if code:
            assert r.json()["code"] == code
    assert (await gw.get("/api/v1/teams", headers=admin)).json()["total"] == 1
    assert (await gw.get(f"/api/v1/teams/{uuid.uuid4()}", headers=admin)).status_code == 404


async def test_setting_a_password_hashes_it_outside_the_write_transaction(tmp_path, monkeypatch):
    """On SQLite a write transaction holds the one writer lock: another write must go through while a
    new user's password (and then an admin's reset of it) is being hashed."""
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN)
    async with running(create_embedded_app(settings, only=())) as gw:
        admin = await login(gw)
        real = service.hasher
        hashing, release = threading.Event(), threading.Event()

        class SlowHasher:
            def hash(self, password: str) -> str:
                hashing.set()
                release.wait(60)
                return real.hash(password)

            def verify(self, stored: str, password: str) -> bool:
                return real.verify(stored, password)

        monkeypatch.setattr(service, "hasher", SlowHasher())

        async def meanwhile(request, team_name: str):
            hashing.clear()
            release.clear()
            pending = asyncio.ensure_future(request)
            assert await asyncio.to_thread(hashing.wait, 30)
            try:
                # Waiting for the writer lock would never end while the hash is held: bounded, then failed.
                other = await asyncio.wait_for(
                    gw.post("/api/v1/teams", json={"name": team_name, "type": "SALES"}, headers=admin), 30
                )
            finally:
                release.set()
            assert other.status_code == 201, other.text
            return await pending

        user = {"email": "new@example.com", "fullName": "New", "password": PASSWORD, "roles": ["sales_rep"]}
        created = await meanwhile(gw.post("/api/v1/users", json=user, headers=admin), "One")
        assert created.status_code == 201, created.text
        assert (await login(gw, "new@example.com"))["Authorization"].startswith("Bearer ")

        reset = {"password": "another long passphrase", "version": created.json()["version"]}
        patched = await meanwhile(
            gw.patch(f"/api/v1/users/{created.json()['id']}", json=reset, headers=admin), "Two"
        )
        assert patched.status_code == 200, patched.text
        await login(gw, "new@example.com", "another long passphrase")
