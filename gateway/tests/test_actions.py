"""The seed's action API with the seed's inputs, including its validate() and error paths."""

import uuid

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app

from .conftest import PASSWORD, login
from .test_dashboard import SERVICES, settings_for

CM = "/api/v1/actions/customer-manager"
SP = "/api/v1/actions/sales-pipeline"


@pytest.fixture
async def gateway(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as client:
        yield client


async def test_customer_manager_create_update_convert_assign_and_merge(gateway):
    gw = gateway
    admin = await login(gw)
    r = await gw.post(
        CM,
        json={
            "action": "create",
            "data": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    customer = body["data"]["customer"]
    assert customer["status"] == "LEAD"
    assert body["events"][0]["type"] == "customer.created"
    assert body["events"][0]["data"]["customerId"] == customer["id"]

    dup = await gw.post(
        CM,
        json={"action": "create", "data": {"firstName": "A", "lastName": "B", "email": "ADA@example.com"}},
        headers=admin,
    )
    assert dup.status_code == 409
    assert dup.json()["success"] is False and "data" not in dup.json()
    assert dup.json()["error"]["message"] == "Customer with this email already exists"
    assert dup.json()["error"]["code"] == "CUSTOMER_ACTION_ERROR"
    assert dup.json()["error"]["reason"] == "CUSTOMER_EMAIL_EXISTS"

    upd = await gw.post(
        CM,
        json={"action": "update", "customerId": customer["id"], "data": {"industry": "Computing"}},
        headers=admin,
    )
    assert upd.status_code == 200, upd.text
    assert upd.json()["data"]["customer"]["industry"] == "Computing"

    conv = await gw.post(
        CM, json={"action": "convert", "customerId": customer["id"], "data": {}}, headers=admin
    )
    assert conv.status_code == 200, conv.text
    assert conv.json()["data"]["customer"]["status"] == "CUSTOMER"
    assert conv.json()["events"][0]["type"] == "customer.converted"
    again = await gw.post(
        CM, json={"action": "convert", "customerId": customer["id"], "data": {}}, headers=admin
    )
    assert (
        again.json()["success"] is False and again.json()["error"]["message"] == "Only leads can be converted"
    )

    me = (await gw.get("/api/v1/me", headers=admin)).json()
    assign = await gw.post(
        CM,
        json={"action": "assign", "customerId": customer["id"], "data": {"assignedToId": me["id"]}},
        headers=admin,
    )
    assert assign.status_code == 200, assign.text
    assert assign.json()["data"]["customer"]["assignedToId"] == me["id"]

    other = (
        await gw.post(
            CM,
            json={
                "action": "create",
                "data": {"firstName": "Ada", "lastName": "L", "email": "ada2@example.com"},
            },
            headers=admin,
        )
    ).json()
    merge = await gw.post(
        CM,
        json={
            "action": "merge",
            "data": {
                "primaryCustomerId": customer["id"],
                "secondaryCustomerId": other["data"]["customer"]["id"],
            },
        },
        headers=admin,
    )
    assert merge.status_code == 200, merge.text
    assert merge.json()["events"][0]["type"] == "customer.merged"

    seg = await gw.post(
        CM, json={"action": "segment", "data": {"filter": {"status": ["CUSTOMER"]}}}, headers=admin
    )
    assert seg.status_code == 200, seg.text
    assert seg.json()["data"]["total"] == 1


@pytest.mark.parametrize(
    ("payload", "messages"),
    [
        ({}, ["action is required"]),
        ({"action": "create"}, ["data is required for create action", "email is required for create action"]),
        ({"action": "create", "data": {"firstName": "x"}}, ["email is required for create action"]),
        ({"action": "update", "data": {}}, ["customerId is required for this action"]),
        ({"action": "convert"}, ["customerId is required for this action"]),
        ({"action": "assign", "data": {}}, ["customerId is required for this action"]),
        (
            {"action": "merge", "data": {"primaryCustomerId": "x"}},
            ["both primaryCustomerId and secondaryCustomerId are required for merge action"],
        ),
    ],
)
async def test_customer_manager_validate_rules(gateway, payload, messages):
    admin = await login(gateway)
    r = await gateway.post(CM, json=payload, headers=admin)
    assert r.status_code == 422
    body = r.json()
    assert body["success"] is False and body["error"]["code"] == "CUSTOMER_ACTION_ERROR"
    assert body["error"]["errors"] == messages
    assert (await gateway.get("/api/v1/customers", headers=admin)).json()["total"] == 0


async def test_customer_manager_errors(gateway):
    admin = await login(gateway)
    unknown = await gateway.post(CM, json={"action": "explode"}, headers=admin)
    assert (
        unknown.status_code == 422
        and unknown.json()["error"]["message"] == "Unknown customer action: explode"
    )
    missing = await gateway.post(
        CM,
        json={"action": "update", "customerId": str(uuid.uuid4()), "data": {"industry": "x"}},
        headers=admin,
    )
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Customer not found"


async def test_actions_need_their_permission(gateway):
    admin = await login(gateway)
    await gateway.post(
        "/api/v1/users",
        json={"email": "ro@example.com", "fullName": "Ro", "password": PASSWORD, "roles": ["read_only"]},
        headers=admin,
    )
    reader = await login(gateway, "ro@example.com")
    key = await gateway.post(
        "/api/v1/api-keys", json={"name": "c", "permissions": ["customer_access"]}, headers=admin
    )
    customers_only = {"Authorization": f"Bearer {key.json()['key']}"}
    r = await gateway.post(SP, json={"action": "forecast"}, headers=customers_only)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    assert (await gateway.post(SP, json={"action": "forecast"}, headers=reader)).status_code == 200
    assert (
        await gateway.post(CM, json={"action": "segment", "data": {}}, headers=customers_only)
    ).status_code == 200
    # A reader gets in, but the write the action makes is refused by the service, in the seed's shape.
    create = {"action": "create", "data": {"firstName": "R", "lastName": "O", "email": "ro@example.org"}}
    refused = await gateway.post(CM, json=create, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["success"] is False and refused.json()["error"]["reason"] == "FORBIDDEN"
    assert (await gateway.post(CM, json={"action": "segment"})).status_code == 401


async def test_sales_pipeline_create_move_win_lose_forecast(gateway):
    gw = gateway
    admin = await login(gw)
    customer = (
        await gw.post(
            CM,
            json={"action": "create", "data": {"firstName": "G", "lastName": "H", "email": "g@example.com"}},
            headers=admin,
        )
    ).json()["data"]["customer"]

    async def create(title):
        r = await gw.post(
            SP,
            json={
                "action": "create_opportunity",
                "data": {"title": title, "customerId": customer["id"], "amount": "100.00"},
            },
            headers=admin,
        )
        return r if r.status_code == 200 else None

    r = await eventually(lambda: create("Deal"), timeout=5)
    assert r is not None
    body = r.json()
    assert body["success"] and body["events"][0]["type"] == "opportunity.created"
    opp = body["data"]["opportunity"]
    stages = (await gw.get("/api/v1/stages", headers=admin)).json()
    stages = stages["items"] if isinstance(stages, dict) else stages
    ordinary = [s for s in stages if not s.get("isWon") and not s.get("isLost")]
    target = ordinary[1]
    moved = await gw.post(
        SP,
        json={"action": "update_stage", "opportunityId": opp["id"], "stageId": target["id"]},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    ev = moved.json()["events"][0]
    assert ev["type"] == "opportunity.stage_changed" and ev["data"]["toStageId"] == target["id"]
    assert ev["data"]["fromStageId"] == opp["stageId"]

    won = await gw.post(SP, json={"action": "win", "opportunityId": opp["id"]}, headers=admin)
    assert won.status_code == 200, won.text
    assert won.json()["events"][0]["type"] == "opportunity.won"
    twice = await gw.post(SP, json={"action": "win", "opportunityId": opp["id"]}, headers=admin)
    assert twice.json()["success"] is False and twice.json()["error"]["code"] == "PIPELINE_ACTION_ERROR"

    other = (await create("Other")).json()["data"]["opportunity"]
    lost = await gw.post(
        SP, json={"action": "lose", "opportunityId": other["id"], "data": {"reason": "Price"}}, headers=admin
    )
    assert lost.status_code == 200, lost.text
    assert lost.json()["data"]["opportunity"]["status"] == "LOST"

    forecast = await gw.post(SP, json={"action": "forecast", "data": {"period": "year"}}, headers=admin)
    assert forecast.status_code == 200 and forecast.json()["data"]["forecast"]["period"] == "year"

    for payload, msg in (
        ({}, "action is required"),
        ({"action": "win"}, "opportunityId is required for this action"),
        (
            {"action": "update_stage", "opportunityId": opp["id"]},
            "stageId is required for update_stage action",
        ),
        ({"action": "create_opportunity"}, "data is required for create_opportunity action"),
    ):
        r = await gw.post(SP, json=payload, headers=admin)
        assert r.status_code == 422 and msg in r.json()["error"]["errors"], r.text
    gone = await gw.post(SP, json={"action": "win", "opportunityId": str(uuid.uuid4())}, headers=admin)
    assert gone.status_code == 404 and gone.json()["error"]["message"] == "Opportunity not found"
