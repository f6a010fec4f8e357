"""Stages: the default pipeline, CRUD, and the rules that protect stages holding opportunities."""

import uuid

from crm_common.testing.plugin import count_rows
from pipeline_svc.models import OpportunityStage


async def test_a_fresh_install_has_the_default_pipeline(client, auth_headers):
    r = await client.get("/api/v1/stages", headers=auth_headers("sales_rep"))
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 6 and page["page"] == 1
    got = [(s["name"], s["probability"], s["isWon"], s["isLost"], s["isActive"]) for s in page["items"]]
    assert got == [
        ("Prospecting", 10, False, False, True),
        ("Qualification", 25, False, False, True),
        ("Proposal", 50, False, False, True),
        ("Negotiation", 75, False, False, True),
        ("Closed Won", 100, True, False, True),
        ("Closed Lost", 0, False, True, True),
    ]
    orders = [s["sortOrder"] for s in page["items"]]
    assert orders == sorted(orders)
    assert all(s["color"].startswith("#") and s["requirements"] == [] for s in page["items"])


async def test_default_stage_ids_are_the_same_on_every_install(client, stages):
    ids = {name: s["id"] for name, s in (await stages()).items()}
    ns = uuid.uuid5(uuid.NAMESPACE_URL, "urn:crm:pipeline:default-stage")
    assert ids["Prospecting"] == str(uuid.uuid5(ns, "Prospecting"))


async def test_create_get_update_and_delete_a_stage(client, auth_headers):
    admin = auth_headers("admin")
    body = {
        "name": "Discovery",
        "probability": 15,
        "sortOrder": 15,
        "color": "#123abc",
        "requirements": ["expectedCloseDate", "customFields.decisionMaker"],
    }
    r = await client.post("/api/v1/stages", json=body, headers=admin)
    assert r.status_code == 201, r.text
    stage = r.json()
    assert r.headers["location"] == f"/api/v1/stages/{stage['id']}"
    assert r.headers["etag"] == 'W/"1"'
    assert stage["isActive"] is True and stage["isWon"] is False and stage["version"] == 1
    assert stage["requirements"] == ["expectedCloseDate", "customFields.decisionMaker"]

    names = [s["name"] for s in (await client.get("/api/v1/stages", headers=admin)).json()["items"]]
    assert names[:3] == ["Prospecting", "Discovery", "Qualification"]

    r = await client.patch(
        f"/api/v1/stages/{stage['id']}",
        json={"probability": 20, "requirements": []},
        headers={**admin, "If-Match": 'W/"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.json()["probability"] == 20 and r.json()["requirements"] == [] and r.json()["version"] == 2
    assert r.headers["etag"] == 'W/"2"'

    stale = await client.patch(
        f"/api/v1/stages/{stage['id']}", json={"probability": 30, "version": 1}, headers=admin
    )
    assert stale.status_code == 412 and stale.json()["code"] == "VERSION_CONFLICT"
    missing = await client.patch(f"/api/v1/stages/{stage['id']}", json={"probability": 30}, headers=admin)
    assert missing.status_code == 428

    assert (await client.delete(f"/api/v1/stages/{stage['id']}", headers=admin)).status_code == 204
    gone = await client.get(f"/api/v1/stages/{stage['id']}", headers=admin)
    assert gone.status_code == 404 and gone.json()["code"] == "STAGE_NOT_FOUND"


async def test_stage_names_are_unique_case_insensitively(client, auth_headers):
    r = await client.post(
        "/api/v1/stages", json={"name": "proposal", "sortOrder": 99}, headers=auth_headers()
    )
    assert r.status_code == 409 and r.json()["code"] == "STAGE_NAME_EXISTS"
    assert await count_rows(client, OpportunityStage) == 6


async def test_only_admins_configure_the_pipeline(client, auth_headers):
    r = await client.post(
        "/api/v1/stages", json={"name": "X", "sortOrder": 1}, headers=auth_headers("sales_manager")
    )
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    no_sales = auth_headers("support_agent", perms=["tickets:read", "tickets:write"])
    assert (await client.get("/api/v1/stages", headers=no_sales)).status_code == 403
    assert (await client.get("/api/v1/stages", headers=auth_headers("support_agent"))).status_code == 200
    assert (await client.get("/api/v1/stages")).status_code == 401


BAD_STAGES = [
    ({"name": "X", "sortOrder": 1, "probability": 101}, "probability"),
    ({"name": "X", "sortOrder": 1, "probability": -1}, "probability"),
    ({"name": "X", "sortOrder": 1, "probability": "lots"}, "probability"),
    ({"name": "", "sortOrder": 1}, "name"),
    ({"name": "X"}, "sortOrder"),
    ({"name": "X", "sortOrder": 1, "color": "red; drop"}, "color"),
    ({"name": "X", "sortOrder": 1, "requirements": ["budget"]}, "requirements.0"),
    ({"name": "X", "sortOrder": 1, "requirements": ["amount", "amount"]}, "requirements"),
    ({"name": "X", "sortOrder": 1, "isWon": True, "isLost": True}, "body"),
    ({"name": "X", "sortOrder": 1, "colour": "#fff"}, "colour"),
]


async def test_bad_stage_input_is_a_422_and_writes_nothing(client, auth_headers):
    for body, field in BAD_STAGES:
        r = await client.post("/api/v1/stages", json=body, headers=auth_headers())
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "VALIDATION_ERROR"
        assert field in {e["field"] for e in r.json()["errors"]}
        assert await count_rows(client, OpportunityStage) == 6


async def test_a_stage_with_opportunities_cannot_be_deleted_only_deactivated(
    client, auth_headers, stages, new_opportunity
):
    await new_opportunity()
    prospecting = (await stages())["Prospecting"]
    url = f"/api/v1/stages/{prospecting['id']}"
    r = await client.delete(url, headers=auth_headers())
    assert r.status_code == 409 and r.json()["code"] == "STAGE_IN_USE"
    assert "deactivate" in r.json()["detail"]
    r = await client.patch(url, json={"isActive": False, "version": 1}, headers=auth_headers())
    assert r.status_code == 200 and r.json()["isActive"] is False
    # New opportunities now start in the next active stage.
    later = await new_opportunity()
    assert later["stageName"] == "Qualification" and later["probability"] == 25
    # An unused stage can be deleted.
    negotiation = (await stages())["Negotiation"]
    assert (
        await client.delete(f"/api/v1/stages/{negotiation['id']}", headers=auth_headers())
    ).status_code == 204


async def test_a_stage_holding_opportunities_cannot_become_won_or_lost(
    client, auth_headers, stages, new_opportunity
):
    await new_opportunity()
    prospecting = (await stages())["Prospecting"]
    r = await client.patch(
        f"/api/v1/stages/{prospecting['id']}", json={"isWon": True, "version": 1}, headers=auth_headers()
    )
    assert r.status_code == 409 and r.json()["code"] == "STAGE_IN_USE"


async def test_list_filters_active_and_unknown_sort_is_refused(client, auth_headers, stages):
    admin = auth_headers()
    lost = (await stages())["Closed Lost"]
    await client.patch(f"/api/v1/stages/{lost['id']}", json={"isActive": False, "version": 1}, headers=admin)
    active = (await client.get("/api/v1/stages", params={"isActive": "true"}, headers=admin)).json()
    assert "Closed Lost" not in [s["name"] for s in active["items"]] and active["total"] == 5
    r = await client.get("/api/v1/stages", params={"sort": "colour"}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "INVALID_SORT"


async def test_a_patch_changes_only_what_it_sends_and_null_empties_only_what_may_be_empty(
    client, auth_headers
):
    admin = auth_headers("admin")
    body = {
        "name": "Discovery",
        "description": "First call",
        "probability": 15,
        "sortOrder": 15,
        "color": "#123",
    }
    stage = (await client.post("/api/v1/stages", json=body, headers=admin)).json()
    url = f"/api/v1/stages/{stage['id']}"
    for field in ("name", "probability", "sortOrder", "isActive", "isWon", "isLost", "requirements"):
        r = await client.patch(url, json={field: None, "version": 1}, headers=admin)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), field
    assert (await client.get(url, headers=admin)).json() == stage
    r = await client.patch(url, json={"description": None, "version": 1}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {**stage, "description": None, "version": 2, "updatedAt": r.json()["updatedAt"]}
