"""Every operation of the whole public API (the merged /openapi.json, all five services) refuses a
caller without the permission its context needs: 401 with no credential, 403 with an API key that
holds every other permission, and not 403 with a key holding just that one."""

import re

import pytest
from crm_common.auth import PERMISSIONS
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.routing import service_for
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

PERMISSION_OF_SERVICE = {
    "customer": "customer_access",
    "pipeline": "sales_access",
    "activity": "activity_access",
    "ticket": "support_access",
    "campaign": "marketing_access",
}
PUBLIC = {"auth_token"}
# The gateway's own operations open to any signed-in caller: who they are, and the composed views
# (whose parts each check the caller's permissions, see test_dashboard and test_views).
ANY_CALLER = {"me_get", "dashboard_get", "views_list", "views_get", "views_data"}
ADMIN_ONLY = ["sla_policies_create", "sla_policies_update", "stages_create", "stages_delete", "stages_update"]
UUID = "00000000-0000-0000-0000-000000000001"


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", UUID, path).replace(f"views/{UUID}", "views/customer-list")


@pytest.fixture
async def gateway(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path, admin_password=PASSWORD, admin_email=ADMIN, rate_limit_enabled=False
    )
    async with running(create_embedded_app(settings)) as client:
        yield client


async def key_with(gw, admin, permissions) -> dict[str, str]:
    r = await gw.post(
        "/api/v1/api-keys", json={"name": "probe", "permissions": sorted(permissions)}, headers=admin
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def test_every_operation_of_every_service_needs_its_permission(gateway):
    gw = gateway
    admin = await login(gw)
    doc = (await gw.get("/openapi.json")).json()
    operations = [
        (method, path, op["operationId"])
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    by_service = {s: [o for o in operations if service_for(o[1]) == s] for s in PERMISSION_OF_SERVICE}
    assert all(by_service.values()), {s: len(o) for s, o in by_service.items()}  # all five are served

    everything_but = {
        s: await key_with(gw, admin, set(PERMISSIONS) - {p, "admin"})
        for s, p in PERMISSION_OF_SERVICE.items()
    }
    only = {s: await key_with(gw, admin, {p}) for s, p in PERMISSION_OF_SERVICE.items()}

    wrong, admin_only = [], {}
    for method, path, operation_id in operations:
        if operation_id in PUBLIC:
            continue
        url = concrete(path)
        anonymous = await gw.request(method, url, json={})
        if anonymous.status_code != 401:
            wrong.append((operation_id, "anonymous", anonymous.status_code))
        service = service_for(path)
        if service is None:
            continue  # the gateway's own: test_access checks its admin-only ones
        refused = await gw.request(method, url, json={}, headers=everything_but[service])
        if refused.status_code != 403 or refused.json().get("code") != "FORBIDDEN":
            wrong.append((operation_id, f"without {PERMISSION_OF_SERVICE[service]}", refused.status_code))
        allowed = await gw.request(method, url, json={}, headers=only[service])
        if allowed.status_code == 403 and "`admin`" in allowed.json()["detail"]:
            admin_only[operation_id] = (method, url)
        elif allowed.status_code in (401, 403):
            wrong.append((operation_id, f"with only {PERMISSION_OF_SERVICE[service]}", allowed.status_code))
    for operation_id, (method, url) in admin_only.items():
        r = await gw.request(method, url, json={}, headers=admin)
        if r.status_code in (401, 403):
            wrong.append((operation_id, "as admin", r.status_code))
    assert wrong == []
    # Configuration of the pipeline and the SLA policies is for administrators.
    assert sorted(admin_only) == ADMIN_ONLY
    gateway_own = {o[2] for o in operations if service_for(o[1]) is None}
    assert ANY_CALLER <= gateway_own
