"""The subscriptions API: what an integrator sets up, and what is refused (nothing written)."""

import base64

import pytest

from .conftest import World, with_fake_dns

API = "/api/v1/webhooks"


async def test_create_shows_the_secret_once(world: World, receiver):
    created = await world.subscribe(receiver.url, description="warehouse loader")
    assert created["secret"].startswith("whsec_")
    assert len(base64.b64decode(created["secret"].removeprefix("whsec_"))) == 32
    assert created["eventTypes"] == ["customer.*", "opportunity.won"]
    assert created["active"] is True and created["disabledReason"] is None
    assert created["health"]["consecutiveFailures"] == 0
    r = await world.client.get(f"{API}/{created['id']}", headers=world.admin)
    assert r.status_code == 200
    assert "secret" not in r.json()
    assert r.headers["ETag"] == 'W/"1"'
    listed = (await world.client.get(API, headers=world.admin)).json()
    assert [w["id"] for w in listed["items"]] == [created["id"]]
    assert all("secret" not in w for w in listed["items"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/hooks", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::1]/hooks", "loopback"),
        ("http://224.0.0.1/hooks", "multicast"),
        ("http://[::ffff:10.1.2.3]/hooks", "private"),
        ("http://100.64.0.1/hooks", "not a public address"),
    ],
)
async def test_private_and_metadata_targets_are_refused(world: World, url, reason):
    r = await world.client.post(API, json={"url": url, "eventTypes": ["customer.*"]}, headers=world.admin)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    assert reason in problem["errors"][0]["message"]
    assert problem["errors"][0]["field"] == "url"
    assert await world.counts() == (0, 0, 0)


@pytest.fixture
async def strict_client(settings_for, bus):
    """webhook-svc without an allowed network: the default of an installation."""
    from crm_common.testing.plugin import running
    from webhook_svc.app import create_app

    app = create_app(settings_for(allowed_networks=[]), bus=bus)
    with_fake_dns(app)
    async with running(app) as client:
        yield client


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/hooks", "http://localhost:8000/hooks"])
async def test_loopback_is_refused_unless_allowed(strict_client, auth_headers, url):
    """`localhost` is refused after resolution: the name is not what is checked, its addresses are."""
    r = await strict_client.post(
        API, json={"url": url, "eventTypes": ["customer.*"]}, headers=auth_headers("admin")
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    assert "loopback" in r.json()["detail"]


async def test_a_name_that_does_not_resolve_is_refused(world: World):
    r = await world.client.post(
        API,
        json={"url": "https://no-such-host.invalid/hooks", "eventTypes": ["customer.*"]},
        headers=world.admin,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    assert "does not resolve" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"url": "ftp://hooks.example.com/x", "eventTypes": ["customer.*"]}, "INVALID_WEBHOOK_URL", "url"),
        (
            {"url": "https://user:pw@hooks.example.com/x", "eventTypes": ["customer.*"]},
            "INVALID_WEBHOOK_URL",
            "url",
        ),
        (
            {"url": "https://hooks.example.com/x", "eventTypes": ["customer.exploded"]},
            "UNKNOWN_EVENT_TYPE",
            "eventTypes.0",
        ),
        (
            {"url": "https://hooks.example.com/x", "eventTypes": ["Customer Created"]},
            "UNKNOWN_EVENT_TYPE",
            "eventTypes.0",
        ),
        ({"url": "https://hooks.example.com/x", "eventTypes": []}, "VALIDATION_ERROR", "eventTypes"),
        (
            {
                "url": "https://hooks.example.com/x",
                "eventTypes": ["*"],
                "filter": {"data.status": [{"a": 1}]},
            },
            "INVALID_FILTER",
            "filter.data.status",
        ),
    ],
)
async def test_bad_subscriptions_are_refused_with_a_reason(world: World, body, code, field):
    r = await world.client.post(API, json=body, headers=world.admin)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == code
    assert any(e["field"] == field for e in problem["errors"]), problem
    assert await world.counts() == (0, 0, 0)


async def test_event_types_lists_the_catalogue(world: World):
    r = await world.client.get(f"{API}/event-types", headers=world.admin)
    assert r.status_code == 200
    assert {"customer.created", "opportunity.won", "webhook.disabled"} <= set(r.json()["items"])


async def test_update_needs_the_version_and_checks_the_target(world: World, receiver):
    created = await world.subscribe(receiver.url)
    path = f"{API}/{created['id']}"
    r = await world.client.patch(path, json={"eventTypes": ["ticket.*"]}, headers=world.admin)
    assert r.status_code == 428
    r = await world.client.patch(path, json={"url": "http://10.0.0.1/x", "version": 1}, headers=world.admin)
    assert r.status_code == 422 and r.json()["code"] == "WEBHOOK_TARGET_FORBIDDEN"
    r = await world.client.patch(
        path, json={"eventTypes": ["ticket.*"], "active": False}, headers={**world.admin, "If-Match": 'W/"1"'}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["eventTypes"], body["active"], body["disabledReason"], body["version"]) == (
        ["ticket.*"],
        False,
        "DISABLED_BY_USER",
        2,
    )
    r = await world.client.patch(path, json={"description": "x", "version": 1}, headers=world.admin)
    assert r.status_code == 412
    r = await world.client.patch(path, json={"active": True, "version": 2}, headers=world.admin)
    assert r.json()["active"] is True and r.json()["disabledReason"] is None


async def test_patch_tells_null_from_not_sent(world: World, receiver):
    """A field left out of a PATCH stays as it is; null clears the description and the filter and
    is a 422 (`null`) for a field every subscription has, with nothing changed (it was ignored)."""
    created = await world.subscribe(receiver.url, description="CRM feed", filter={"data.status": "LEAD"})
    path = f"{API}/{created['id']}"
    sent = {"url": None, "eventTypes": None, "active": None, "orderedByAggregate": None, "version": 1}
    r = await world.client.patch(path, json=sent, headers=world.admin)
    assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR")
    assert sorted((e["field"], e["code"]) for e in r.json()["errors"]) == [
        ("active", "null"),
        ("eventTypes", "null"),
        ("orderedByAggregate", "null"),
        ("url", "null"),
    ]
    assert (await world.client.get(path, headers=world.admin)).json() == created_without_secret(created)
    r = await world.client.patch(
        path, json={"description": None, "filter": None, "version": 1}, headers=world.admin
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["description"], body["filter"], body["url"], body["eventTypes"], body["active"]) == (
        None,
        None,
        receiver.url,
        created["eventTypes"],
        True,
    )


def created_without_secret(created: dict) -> dict:
    return {k: v for k, v in created.items() if k != "secret"}


async def test_delete(world: World, receiver):
    created = await world.subscribe(receiver.url)
    r = await world.client.delete(f"{API}/{created['id']}", headers=world.admin)
    assert r.status_code == 204
    assert (await world.client.get(f"{API}/{created['id']}", headers=world.admin)).status_code == 404
    assert await world.counts() == (0, 0, 0)


async def test_rotation_answers_a_new_secret_and_keeps_the_old_one_for_a_while(world: World, receiver):
    created = await world.subscribe(receiver.url)
    r = await world.client.post(
        f"{API}/{created['id']}/rotate-secret", json={"graceSeconds": 3600}, headers=world.admin
    )
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previousSecretExpiresAt"] is not None


@pytest.mark.parametrize("role", ["sales_manager", "read_only", "marketer"])
async def test_only_admins_and_webhook_permissions_manage_webhooks(
    world: World, auth_headers, make_token, role
):
    for method, path in [("get", API), ("post", API), ("get", f"{API}/event-types")]:
        kwargs = (
            {"json": {"url": "https://hooks.example.com", "eventTypes": ["*"]}} if method == "post" else {}
        )
        r = await getattr(world.client, method)(path, headers=auth_headers(role), **kwargs)
        assert r.status_code == 403, (role, method, path)
        assert r.json()["code"] == "FORBIDDEN"
    # An integration's key holding just webhooks:read may read, not write.
    reader = {"Authorization": "Bearer " + make_token(("integration",), perms=["webhooks:read"])}
    assert (await world.client.get(API, headers=reader)).status_code == 200
    r = await world.client.post(
        API, json={"url": "https://hooks.example.com", "eventTypes": ["*"]}, headers=reader
    )
    assert r.status_code == 403 and "webhooks:write" in r.json()["detail"]
