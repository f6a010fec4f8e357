"""POST /customers/{id}/assign: to active users and teams of the local directory."""

import uuid

from .conftest import add_team, add_user, create, outbox_payloads


async def assign(client, customer_id, headers, body):
    return await client.post(f"/api/v1/customers/{customer_id}/assign", json=body, headers=headers)


async def test_assign_to_a_user_and_a_team(client, auth_headers):
    actor = uuid.uuid4()
    headers = auth_headers("sales_manager", user_id=actor)
    grace = await add_user(client, "Grace Hopper")
    team = await add_team(client, "EMEA")
    c = await create(client, headers)
    assert (
        c["assignedToId"] == str(actor) and c["assignedToName"] is None
    )  # the caller is not in the directory

    r = await assign(client, c["id"], headers, {"assignedToId": str(grace), "teamId": str(team)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["assignedToId"] == str(grace) and body["assignedToName"] == "Grace Hopper"
    assert body["teamId"] == str(team) and body["version"] == 2 and r.headers["etag"] == 'W/"2"'
    (event,) = await outbox_payloads(client, "customer.assigned")
    assert event["subject"] == c["id"] and event["sequence"] == 2
    data = event["data"]
    assert data["assignedToId"] == str(grace) and data["teamId"] == str(team)
    assert data["previousAssignedToId"] == str(actor) and data["previousTeamId"] is None
    assert data["assignedBy"] == str(actor) and data["customerNumber"] == c["customerNumber"]
    got = (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json()
    assert got["assignedToName"] == "Grace Hopper"


async def test_team_only_keeps_the_user_and_null_clears(client, auth_headers):
    headers = auth_headers()
    team = await add_team(client)
    c = await create(client, headers)
    r = await assign(client, c["id"], headers, {"teamId": str(team)})
    assert r.json()["teamId"] == str(team) and r.json()["assignedToId"] == c["assignedToId"]
    r = await assign(client, c["id"], headers, {"teamId": None})
    assert r.status_code == 200 and r.json()["teamId"] is None and r.json()["version"] == 3
    assert len(await outbox_payloads(client, "customer.assigned")) == 2


async def test_the_same_assignment_again_changes_nothing(client, auth_headers):
    headers = auth_headers()
    user = await add_user(client)
    c = await create(client, headers)
    first = await assign(client, c["id"], headers, {"assignedToId": str(user)})
    again = await assign(client, c["id"], headers, {"assignedToId": str(user)})
    assert again.status_code == 200 and again.json()["version"] == first.json()["version"] == 2
    assert len(await outbox_payloads(client, "customer.assigned")) == 1


async def test_unknown_or_inactive_users_and_teams_are_refused(client, auth_headers):
    headers = auth_headers()
    c = await create(client, headers)
    gone = await add_user(client, "Left Company")
    await add_user(client, "Left Company", user_id=gone, active=False, version=2)
    # An older event arriving late does not bring the user back.
    await add_user(client, "Left Company", user_id=gone, active=True, version=1)
    old_team = await add_team(client, "Closed", active=False)
    cases = [
        ({"assignedToId": str(uuid.uuid4())}, "UNKNOWN_USER", "assignedToId"),
        ({"assignedToId": str(gone)}, "UNKNOWN_USER", "assignedToId"),
        ({"teamId": str(uuid.uuid4())}, "UNKNOWN_TEAM", "teamId"),
        ({"teamId": str(old_team)}, "UNKNOWN_TEAM", "teamId"),
        ({}, "VALIDATION_ERROR", "body"),
        ({"assignedToId": "bob"}, "VALIDATION_ERROR", "assignedToId"),
        ({"assignedToId": None, "owner": 1}, "VALIDATION_ERROR", "owner"),
    ]
    for body, code, field in cases:
        r = await assign(client, c["id"], headers, body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["code"] == code and r.json()["errors"][0]["field"] == field, (body, r.text)
    assert (await client.get(f"/api/v1/customers/{c['id']}", headers=headers)).json() == c
    assert await outbox_payloads(client, "customer.assigned") == []


async def test_assign_checks_versions_existence_merges_and_permissions(client, auth_headers):
    headers = auth_headers()
    user = await add_user(client)
    assert (await assign(client, uuid.uuid4(), headers, {"assignedToId": str(user)})).status_code == 404
    c = await create(client, headers)
    stale = await assign(client, c["id"], {**headers, "If-Match": 'W/"9"'}, {"assignedToId": str(user)})
    assert stale.status_code == 412
    assert (
        await assign(client, c["id"], auth_headers("nobody"), {"assignedToId": str(user)})
    ).status_code == 403
    p = await create(client, headers)
    await client.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": p["id"], "secondaryCustomerId": c["id"]},
        headers=headers,
    )
    merged = await assign(client, c["id"], headers, {"assignedToId": str(user)})
    assert merged.status_code == 409 and merged.json()["code"] == "CUSTOMER_MERGED"
