"""Rotating refresh tokens for the password grant (OAuth 2.0 Security BCP): each use answers a new
pair and spends the old refresh token; a spent one presented again revokes its whole family; they are
stored hashed, expire, end with a password change or deactivation, and sign-out revokes the family."""

import asyncio
import hashlib

from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity.models import RefreshToken
from crm_gateway.settings import GatewaySettings
from sqlalchemy import select

from .conftest import ADMIN, PASSWORD

TOKEN = "/api/v1/auth/token"


async def sign_in(gw, username=ADMIN, password=PASSWORD) -> dict:
    r = await gw.post(TOKEN, data={"grant_type": "password", "username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def refresh(gw, refresh_token: str):
    return await gw.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": refresh_token})


def bearer(pair: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}


def assert_invalid_grant(r) -> None:
    assert r.status_code == 400, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == "invalid_grant" and body["code"] == "INVALID_GRANT", body


async def test_a_refresh_answers_a_new_pair_and_spends_the_old_token(identity_gateway):
    gw = identity_gateway
    first = await sign_in(gw)
    assert first["refresh_token"].startswith("crmr_") and first["expires_in"] > 0
    r = await refresh(gw, first["refresh_token"])
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    second = r.json()
    assert second["token_type"] == "bearer"
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    me = await gw.get("/api/v1/me", headers=bearer(second))
    assert me.status_code == 200 and me.json()["email"] == ADMIN
    third = (await refresh(gw, second["refresh_token"])).json()
    assert third["refresh_token"] not in (first["refresh_token"], second["refresh_token"])


async def test_reusing_a_spent_refresh_token_revokes_the_whole_family(identity_gateway):
    gw = identity_gateway
    stolen = await sign_in(gw)
    other_device = await sign_in(gw)
    legit = (await refresh(gw, stolen["refresh_token"])).json()
    # The thief (or a confused client) presents the spent token: refused, and the family ends...
    assert_invalid_grant(await refresh(gw, stolen["refresh_token"]))
    # ...so the token the rightful holder got from it is refused too: both must sign in again.
    assert_invalid_grant(await refresh(gw, legit["refresh_token"]))
    # Another sign-in is another family, untouched.
    assert (await refresh(gw, other_device["refresh_token"])).status_code == 200


async def test_two_uses_of_one_refresh_token_at_once_are_a_reuse(identity_gateway):
    gw = identity_gateway
    pair = await sign_in(gw)
    answers = await asyncio.gather(*(refresh(gw, pair["refresh_token"]) for _ in range(2)))
    assert sorted(r.status_code for r in answers) == [200, 400], [r.text for r in answers]
    (winner,) = [r.json() for r in answers if r.status_code == 200]
    # Whichever came second revoked the family, the winner's new token included.
    assert_invalid_grant(await refresh(gw, winner["refresh_token"]))


async def test_sign_out_revokes_the_family(identity_gateway):
    gw = identity_gateway
    pair = await sign_in(gw)
    rotated = (await refresh(gw, pair["refresh_token"])).json()
    out = await gw.post("/api/v1/auth/logout", json={"refreshToken": rotated["refresh_token"]})
    assert out.status_code == 204, out.text
    assert out.headers["cache-control"] == "no-store"
    assert_invalid_grant(await refresh(gw, rotated["refresh_token"]))
    # Unknown tokens are answered the same (RFC 7009 §2.2); a body without one is a 422.
    assert (await gw.post("/api/v1/auth/logout", json={"refreshToken": "crmr_unknown"})).status_code == 204
    missing = await gw.post("/api/v1/auth/logout", json={})
    assert missing.status_code == 422 and missing.json()["code"] == "VALIDATION_ERROR"


async def test_refresh_tokens_end_with_a_password_change_or_deactivation(identity_gateway):
    gw = identity_gateway
    admin = await sign_in(gw)
    r = await gw.post(
        "/api/v1/users",
        json={"email": "rep@example.com", "fullName": "Rep", "password": PASSWORD, "roles": ["sales_rep"]},
        headers=bearer(admin),
    )
    assert r.status_code == 201, r.text
    user = r.json()

    before = await sign_in(gw, "rep@example.com")
    changed = await gw.post(
        "/api/v1/auth/password",
        json={"currentPassword": PASSWORD, "newPassword": "a brand new passphrase"},
        headers=bearer(before),
    )
    assert changed.status_code == 200, changed.text
    assert_invalid_grant(await refresh(gw, before["refresh_token"]))
    after = changed.json()  # the change answers a new pair, which works
    renewed = await refresh(gw, after["refresh_token"])
    assert renewed.status_code == 200, renewed.text

    r = await gw.patch(
        f"/api/v1/users/{user['id']}",
        json={
            "isActive": False,
            "version": (await gw.get(f"/api/v1/users/{user['id']}", headers=bearer(admin))).json()["version"],
        },
        headers=bearer(admin),
    )
    assert r.status_code == 200, r.text
    assert_invalid_grant(await refresh(gw, renewed.json()["refresh_token"]))


async def test_refresh_grant_errors(identity_gateway):
    gw = identity_gateway
    missing = await gw.post(TOKEN, data={"grant_type": "refresh_token"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request", missing.text
    assert_invalid_grant(await refresh(gw, "crmr_not-a-token"))


async def test_refresh_tokens_are_stored_hashed_and_expire(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN, refresh_token_ttl_seconds=1
    )
    app = create_embedded_app(settings, only=())
    async with running(app) as gw:
        pair = await sign_in(gw)
        async with app.state.runtime.db.transaction(read_only=True) as session:
            stored = (await session.execute(select(RefreshToken))).scalars().all()
        assert len(stored) == 1
        assert stored[0].token_hash == hashlib.sha256(pair["refresh_token"].encode()).hexdigest()
        assert pair["refresh_token"] not in repr(stored[0].model_dump())
        await asyncio.sleep(1.2)  # past its 1 s life
        assert_invalid_grant(await refresh(gw, pair["refresh_token"]))
