"""Every operation of the whole public API (the merged /openapi.json: the gateway's own and all the
services') for every built-in role: 401 with no credential, 403 `FORBIDDEN` naming the missing
permission where the role lacks it, and anything but 401/403 where it holds it. The expectation comes
from the documented matrix (crm_common.auth.ROLE_PERMISSIONS): a service's GET needs `<context>:read`,
its other methods `<context>:write`, a few configuration operations `admin`."""

import re

import pytest
from crm_common.auth import ROLE_PERMISSIONS
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.routing import service_for
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

CONTEXT_OF_SERVICE = {
    "customer": "customers",
    "pipeline": "sales",
    "activity": "activities",
    "ticket": "tickets",
    "campaign": "campaigns",
    "webhook": "webhooks",
}
PUBLIC = {"auth_token", "auth_logout"}
# The gateway's own operations open to any signed-in caller: who they are, the user and team
# directory (names only for non-admins), and the composed views (whose parts each check the caller's
# permissions, see test_dashboard and test_views).
ANY_CALLER = {
    "me_get",
    "me_update",
    "auth_password_change",
    "dashboard_get",
    "views_list",
    "views_get",
    "views_data",
    "users_list",
    "users_get",
    "teams_list",
    "teams_get",
    "oauth_clients_create",
    "oauth_clients_list",
    "oauth_clients_get",
    "oauth_clients_revoke",
}
GATEWAY_ADMIN = {
    "users_create",
    "users_update",
    "teams_create",
    "teams_update",
    "api_keys_create",
    "api_keys_list",
    "api_keys_get",
    "api_keys_revoke",
    # Dead letters and outboxes (crm_common.events.admin_api), whichever service the path names.
    "dead_letters_list",
    "dead_letters_get",
    "dead_letters_replay",
    "dead_letters_discard",
    "outbox_list",
    "outbox_get",
    "outbox_replay",
    "roles_list",
    "roles_get",
    "roles_update",
    # Everything held about a person (GDPR art. 15).
    "customers_personal_data",
}
# The seed's action API: reading the context lets you in; each REST call it makes checks writes.
GATEWAY_READ = {"actions_customer_manager": "customers:read", "actions_sales_pipeline": "sales:read"}
# Configuration of the pipeline and the SLA policies is for administrators; so is erasing a person.
SERVICE_ADMIN = {
    "customers_erase",
    "sla_policies_create",
    "sla_policies_update",
    "stages_create",
    "stages_delete",
    "stages_update",
}
# POSTs that only read: a read-only caller batch-reads what it may read, in every service.
SERVICE_READ = {
    "segments_preview",
    "customers_batch_read",
    "opportunities_batch_read",
    "activities_batch_read",
    "tickets_batch_read",
}
UUID = "00000000-0000-0000-0000-000000000001"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", UUID, path).replace(f"views/{UUID}", "views/customer-list")


def needed(method: str, path: str, operation_id: str) -> str | None:
    """The permission an operation needs (None: any signed-in caller)."""
    if operation_id in GATEWAY_ADMIN or operation_id in SERVICE_ADMIN:
        return "admin"
    if operation_id in GATEWAY_READ:
        return GATEWAY_READ[operation_id]
    service = service_for(path)
    if service is None:
        assert operation_id in ANY_CALLER, f"{operation_id}: add it to this test's expectations"
        return None
    read = method == "get" or operation_id in SERVICE_READ
    return f"{CONTEXT_OF_SERVICE[service]}:{'read' if read else 'write'}"


@pytest.fixture
async def gateway(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN, rate_limit_enabled=False
    )
    async with running(create_embedded_app(settings)) as client:
        yield client


async def user_with(gw, admin, role: str) -> dict[str, str]:
    email = f"{role}@example.com"
    r = await gw.post(
        "/api/v1/users",
        json={"email": email, "fullName": role, "password": PASSWORD, "roles": [role]},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return await login(gw, email)


async def key_with(gw, admin, permissions) -> dict[str, str]:
    r = await gw.post(
        "/api/v1/api-keys", json={"name": "probe", "permissions": sorted(permissions)}, headers=admin
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


def test_the_matrix_is_what_the_docs_say():
    data_contexts = set(CONTEXT_OF_SERVICE.values()) - {"webhooks"}
    assert ROLE_PERMISSIONS["read_only"] == {f"{c}:read" for c in data_contexts}
    # Webhooks send every event to a URL: only admins (and API keys given the permission) manage them.
    assert all(
        not {"webhooks:read", "webhooks:write"} & perms
        for role, perms in ROLE_PERMISSIONS.items()
        if role != "admin"
    )
    assert (
        "customers:write" in ROLE_PERMISSIONS["sales_rep"] and "sales:write" in ROLE_PERMISSIONS["sales_rep"]
    )
    assert "tickets:write" not in ROLE_PERMISSIONS["sales_rep"]
    assert "tickets:write" in ROLE_PERMISSIONS["support_agent"]
    assert "campaigns:write" in ROLE_PERMISSIONS["marketer"]
    assert "sales:write" not in ROLE_PERMISSIONS["marketer"]
    assert all("admin" not in perms for role, perms in ROLE_PERMISSIONS.items() if role != "admin")


async def test_every_operation_for_every_role(gateway):
    gw = gateway
    admin = await login(gw)
    doc = (await gw.get("/openapi.json")).json()
    operations = [
        (method, path, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    served = {service_for(path) for _, path, _ in operations}
    assert set(CONTEXT_OF_SERVICE) <= served  # every service is in the document
    callers = {role: await user_with(gw, admin, role) for role in ROLE_PERMISSIONS if role != "admin"}
    callers["admin"] = admin

    wrong = []
    for method, path, operation_id in operations:
        if operation_id in PUBLIC:
            continue
        url = concrete(path)
        anonymous = await gw.request(method, url, json={})
        if anonymous.status_code != 401:
            wrong.append((operation_id, "anonymous", anonymous.status_code))
        permission = needed(method, path, operation_id)
        for role, headers in callers.items():
            r = await gw.request(method, url, json={}, headers=headers)
            allowed = permission is None or permission in ROLE_PERMISSIONS[role]
            if allowed and r.status_code in (401, 403):
                wrong.append((operation_id, role, "refused", r.status_code, r.text[:120]))
            if not allowed and (
                r.status_code != 403
                or r.json().get("code") != "FORBIDDEN"
                or f"`{permission}`" not in r.json().get("detail", "")
            ):
                wrong.append((operation_id, role, "allowed", r.status_code, r.text[:120]))
    assert wrong == []


async def test_read_only_cannot_write_customers(gateway):
    gw = gateway
    admin = await login(gw)
    reader = await user_with(gw, admin, "read_only")
    body = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"}
    r = await gw.post("/api/v1/customers", json=body, headers=reader)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "FORBIDDEN" and "`customers:write`" in r.json()["detail"]
    created = await gw.post("/api/v1/customers", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert (await gw.get("/api/v1/customers", headers=reader)).json()["total"] == 1


async def test_keys_with_the_old_permission_names_keep_working(gateway):
    gw = gateway
    admin = await login(gw)
    key = await key_with(gw, admin, {"customer_access"})
    body = {"firstName": "Grace", "lastName": "Hopper", "email": "grace@example.com"}
    assert (await gw.post("/api/v1/customers", json=body, headers=key)).status_code == 201
    assert (await gw.get("/api/v1/customers", headers=key)).status_code == 200
    r = await gw.get("/api/v1/opportunities", headers=key)
    assert r.status_code == 403 and "`sales:read`" in r.json()["detail"]
    listed = (await gw.get("/api/v1/api-keys", headers=admin)).json()
    assert listed[0]["permissions"] == ["customers:read", "customers:write"]


async def test_a_read_key_cannot_write(gateway):
    gw = gateway
    admin = await login(gw)
    key = await key_with(gw, admin, {"customers:read"})
    assert (await gw.get("/api/v1/customers", headers=key)).status_code == 200
    r = await gw.post("/api/v1/customers", json={"firstName": "X", "email": "x@example.com"}, headers=key)
    assert r.status_code == 403 and "`customers:write`" in r.json()["detail"]


async def test_read_only_batch_reads_and_cannot_batch_write(gateway):
    """Batch reads need the read permission in every service, batch writes the write one."""
    gw = gateway
    admin = await login(gw)
    reader = await user_with(gw, admin, "read_only")
    customer = await gw.post(
        "/api/v1/customers",
        json={"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        headers=admin,
    )
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    created = {}
    for resource, body in {
        "opportunities": {"title": "Analytical engine", "customerId": customer_id},
        "activities": {
            "type": "CALL",
            "subject": "Intro",
            "customerId": customer_id,
            "startDate": "2026-12-01T09:00:00Z",
        },
        "tickets": {
            "subject": "Help",
            "description": "It broke",
            "customerId": customer_id,
            "type": "QUESTION",
        },
    }.items():
        r = await gw.post(f"/api/v1/{resource}", json=body, headers=admin)
        assert r.status_code == 201, (resource, r.text)
        created[resource] = r.json()["id"]
    created["customers"] = customer_id
    missing = "00000000-0000-0000-0000-00000000abcd"
    for resource, record_id in created.items():
        r = await gw.post(
            f"/api/v1/{resource}/batch/read", json={"ids": [record_id, missing]}, headers=reader
        )
        assert r.status_code == 200, (resource, r.text)
        answer = r.json()
        assert [item["status"] for item in answer["results"]] == [200, 404], resource
        assert answer["results"][0]["id"] == record_id
        assert (answer["succeeded"], answer["failed"]) == (1, 1)
        context = {"opportunities": "sales"}.get(resource, resource)
        r = await gw.post(
            f"/api/v1/{resource}/batch/update",
            json={"items": [{"id": record_id}]},
            headers=reader,
        )
        assert r.status_code == 403, (resource, r.text)
        assert r.json()["code"] == "FORBIDDEN" and f"`{context}:write`" in r.json()["detail"]
