"""The seed's views as JSON, and their data from the services."""

import re

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.views.labels import LABEL_KEYS

from .conftest import login
from .test_dashboard import SERVICES, seed, settings_for


@pytest.fixture
async def gateway(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as client:
        yield client


async def test_the_seed_views_are_served(gateway):
    gw = gateway
    admin = await login(gw)
    listed = (await gw.get("/api/v1/views", headers=admin)).json()
    assert [v["id"] for v in listed] == ["crm-dashboard", "customer-list", "sales-pipeline"]
    dash = (await gw.get("/api/v1/views/crm-dashboard", headers=admin)).json()
    assert dash["config"]["layout"] == {"type": "grid", "columns": 12, "rows": "auto"}
    assert [w["id"] for w in dash["config"]["widgets"]] == [
        "sales-metrics",
        "sales-pipeline",
        "recent-activities",
        "top-customers",
    ]
    table = (await gw.get("/api/v1/views/customer-list", headers=admin)).json()
    assert table["config"]["columns"][0]["name"] == "customerNumber" and table["config"]["pageSize"] == 25
    assert {a["name"] for a in table["config"]["rowActions"]} == {"view", "edit", "convert"}
    kanban = (await gw.get("/api/v1/views/sales-pipeline", headers=admin)).json()
    assert kanban["config"]["summaryFields"] == ["count", "totalAmount", "avgAmount"]
    missing = await gw.get("/api/v1/views/nope", headers=admin)
    assert missing.status_code == 404 and missing.json()["code"] == "VIEW_NOT_FOUND"
    assert (await gw.get("/api/v1/views")).status_code == 401


def _labels(definition) -> list[str]:
    """Every label string in a definition, however deep."""
    if isinstance(definition, dict):
        return [
            label
            for key, value in definition.items()
            for label in ([value] if key in LABEL_KEYS and isinstance(value, str) else _labels(value))
        ]
    if isinstance(definition, list):
        return [label for item in definition for label in _labels(item)]
    return []


def _has_chinese(text: str) -> bool:
    return re.search(r"[\u4e00-\u9fff]", text) is not None


async def test_view_labels_are_english_by_default_and_the_seeds_chinese_on_request(gateway):
    gw = gateway
    admin = await login(gw)
    english = await gw.get("/api/v1/views/customer-list", headers=admin)
    assert english.headers["content-language"] == "en"
    assert english.json()["displayName"] == "Customer list"
    assert {c["displayName"] for c in english.json()["config"]["columns"]} >= {"Customer number", "Email"}
    for view in ("crm-dashboard", "customer-list", "sales-pipeline"):
        labels = _labels((await gw.get(f"/api/v1/views/{view}", headers=admin)).json())
        assert labels and not [label for label in labels if _has_chinese(label)], view
    listed = (await gw.get("/api/v1/views", headers=admin)).json()
    assert [v["displayName"] for v in listed] == ["CRM Dashboard", "Customer list", "Sales pipeline"]

    chinese = await gw.get(
        "/api/v1/views/customer-list", headers={**admin, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    )
    assert chinese.headers["content-language"] == "zh"
    assert chinese.json()["displayName"] == "客户列表"
    prefers_english = await gw.get(
        "/api/v1/views/customer-list", headers={**admin, "Accept-Language": "zh;q=0.3, en"}
    )
    assert prefers_english.json()["displayName"] == "Customer list"


async def test_view_data_for_each_view(gateway):
    gw = gateway
    admin = await login(gw)
    customer = await seed(gw, admin)
    rows = (await gw.get("/api/v1/views/customer-list/data", headers=admin)).json()
    assert rows["total"] == 2 and rows["pageSize"] == 25
    assert rows["items"][0]["fullName"] == "Lee Ad"  # default sort: newest first
    assert rows["items"][0]["assignedTo.name"] == "Administrator"
    filtered = (
        await gw.get(
            "/api/v1/views/customer-list/data",
            params={"status": "CUSTOMER", "sort": "fullName"},
            headers=admin,
        )
    ).json()
    assert [r["id"] for r in filtered["items"]] == [customer["id"]]
    bad_sort = await gw.get("/api/v1/views/customer-list/data", params={"sort": "shoeSize"}, headers=admin)
    assert bad_sort.status_code == 422 and bad_sort.json()["code"] == "INVALID_SORT"

    board = (await gw.get("/api/v1/views/sales-pipeline/data", headers=admin)).json()
    cards = [c for col in board["columns"] for c in col["cards"]]
    assert len(cards) == 3 and {c["customer.fullName"] for c in cards} == {"Grace Hopper"}
    assert {c["owner.name"] for c in cards} == {"Administrator"}

    dash = (await gw.get("/api/v1/views/crm-dashboard/data", headers=admin)).json()
    assert dash["view"] == "crm-dashboard" and dash["widgets"]["pipelineFunnel"]["status"] == "ok"


async def test_view_data_respects_the_callers_permissions(gateway):
    gw = gateway
    admin = await login(gw)
    # Every built-in role reads sales; a key that reads customers only does not.
    key = await gw.post(
        "/api/v1/api-keys", json={"name": "customers", "permissions": ["customers:read"]}, headers=admin
    )
    reader = {"Authorization": f"Bearer {key.json()['key']}"}
    r = await gw.get("/api/v1/views/sales-pipeline/data", headers=reader)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    assert (await gw.get("/api/v1/views/customer-list/data", headers=reader)).status_code == 200
