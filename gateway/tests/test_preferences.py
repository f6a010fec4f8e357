"""A user's own preferences (`PATCH /api/v1/me`): their language, kept on their user record and
shown in `/me`, so the console follows them to any browser (on SQLite and on Postgres)."""

from .conftest import PASSWORD, login
from .test_users_teams import outbox_events, user_body


async def test_a_user_sets_their_language_and_reads_it_back_without_touching_anyone_else(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    ada_id = (await gw.post("/api/v1/users", json=user_body(), headers=admin)).json()["id"]
    bob = user_body(email="bob@example.com", fullName="Bob Page")
    assert (await gw.post("/api/v1/users", json=bob, headers=admin)).status_code == 201
    ada = await login(gw, "ada@example.com", PASSWORD)
    assert (await gw.get("/api/v1/me", headers=ada)).json()["locale"] is None  # none chosen yet

    r = await gw.patch("/api/v1/me", json={"locale": "zh"}, headers=ada)
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "zh" and r.json()["id"] == ada_id
    assert (await gw.get("/api/v1/me", headers=ada)).json()["locale"] == "zh"
    # Kept on the user, not the token: a new sign-in reads it too.
    again = await login(gw, "ada@example.com", PASSWORD)
    assert (await gw.get("/api/v1/me", headers=again)).json()["locale"] == "zh"
    # Another user, and the admin, are unaffected.
    assert (await gw.get("/api/v1/me", headers=await login(gw, "bob@example.com"))).json()["locale"] is None
    assert (await gw.get("/api/v1/me", headers=admin)).json()["locale"] is None
    # A preference is not an edit of the user record: its version stays and no event is published.
    user = await gw.get(f"/api/v1/users/{ada_id}", headers=admin)
    assert user.json()["version"] == 1 and user.headers["etag"] == 'W/"1"'
    assert [e for e in await outbox_events(gw, "user.updated") if e["subject"] == ada_id] == []

    # Fields not sent do not change; null forgets the choice.
    assert (await gw.patch("/api/v1/me", json={}, headers=ada)).json()["locale"] == "zh"
    cleared = await gw.patch("/api/v1/me", json={"locale": None}, headers=ada)
    assert cleared.status_code == 200 and cleared.json()["locale"] is None


async def test_an_unsupported_language_is_a_422_and_changes_nothing(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    assert (await gw.patch("/api/v1/me", json={"locale": "en"}, headers=admin)).status_code == 200
    for bad in ({"locale": "fr"}, {"locale": "EN"}, {"locale": 1}, {"locale": "zh", "theme": "dark"}):
        r = await gw.patch("/api/v1/me", json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"], r.text  # which field, and why
    assert (await gw.get("/api/v1/me", headers=admin)).json()["locale"] == "en"
    assert (await gw.patch("/api/v1/me", json={"locale": "zh"})).status_code == 401
