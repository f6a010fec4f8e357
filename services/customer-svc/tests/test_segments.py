"""Saved segments and ad hoc previews, with every filter field of the issue."""

import uuid

import pytest

from .conftest import add_team, add_user, contact, create, deliver, opportunity_event


async def preview(client, headers, filter_, **params):
    r = await client.post(
        "/api/v1/customers/segments/preview", json={"filter": filter_}, params=params, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


async def matching(client, headers, filter_) -> list[str]:
    page = await preview(client, headers, filter_, sort="fullName", pageSize=200)
    assert page["total"] == len(page["items"])
    return [c["fullName"] for c in page["items"]]


@pytest.fixture
async def crowd(client, auth_headers):
    h = auth_headers()
    ann = await add_user(client, "Ann")
    team = await add_team(client, "Nordics")
    a = await create(
        client,
        h,
        firstName="Alpha",
        status="CUSTOMER",
        priority="HIGH",
        industry="Retail",
        source="Web",
        tags=["vip", "eu"],
        customFields={"tier": "gold", "seats": 10, "trial": False},
    )
    b = await create(
        client,
        h,
        type="COMPANY",
        companyName="Beta",
        industry="retail",
        source="Fair",
        tags=["eu"],
        customFields={"tier": "silver", "seats": 10.0, "trial": True},
    )
    c = await create(client, h, firstName="Gamma", status="PROSPECT", priority="LOW", tags=["vip"])
    merged = await create(client, h, firstName="Merged", tags=["vip", "eu"], industry="Retail")
    await client.post(
        f"/api/v1/customers/{a['id']}/assign", json={"assignedToId": str(ann), "teamId": str(team)}, headers=h
    )
    await client.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": c["id"], "secondaryCustomerId": merged["id"]},
        headers=h,
    )
    await deliver(
        client,
        opportunity_event(a["id"], amount="500.00"),
        opportunity_event(a["id"], amount="50.00", status="WON", routing_key="opportunity.won"),
        opportunity_event(b["id"], amount="80.00", currency="EUR"),
        contact(a["id"], "2030-02-01T00:00:00Z"),
        contact(b["id"], "2030-03-01T00:00:00Z"),
    )
    return {"h": h, "ann": ann, "team": team, "a": a, "b": b, "c": c}


async def test_every_filter_field(client, crowd):
    h = crowd["h"]
    cases = [
        ({}, ["Alpha", "Beta", "Gamma"]),  # merged customers never match
        ({"status": ["CUSTOMER", "PROSPECT"]}, ["Alpha", "Gamma"]),
        ({"type": ["COMPANY"]}, ["Beta"]),
        ({"priority": ["HIGH", "LOW"]}, ["Alpha", "Gamma"]),
        ({"industry": ["RETAIL"]}, ["Alpha", "Beta"]),  # case-insensitive
        ({"source": ["web", "nowhere"]}, ["Alpha"]),
        ({"tags": ["vip"]}, ["Alpha", "Gamma"]),
        ({"tags": ["eu", "vip"]}, ["Alpha", "Beta", "Gamma"]),
        ({"tagsAll": ["eu", "vip"]}, ["Alpha"]),
        ({"assignedToId": [str(crowd["ann"])]}, ["Alpha"]),
        ({"teamId": [str(crowd["team"])]}, ["Alpha"]),
        ({"totalValueMin": "100"}, ["Alpha"]),
        ({"totalValueMin": "80", "totalValueMax": "80"}, ["Beta"]),
        ({"totalValueMax": "0"}, ["Gamma"]),
        ({"lifetimeValueMin": "0.01"}, ["Alpha"]),
        ({"lifetimeValueMax": "10"}, ["Beta", "Gamma"]),
        ({"valueCurrency": "EUR"}, ["Beta"]),
        ({"lastContactFrom": "2030-02-15T00:00:00Z"}, ["Beta"]),
        ({"lastContactTo": "2030-02-15T00:00:00Z"}, ["Alpha"]),
        (
            {"lastContactFrom": "2030-01-01T00:00:00Z", "lastContactTo": "2030-12-31T00:00:00Z"},
            ["Alpha", "Beta"],
        ),
        ({"createdFrom": crowd["b"]["createdAt"]}, ["Beta", "Gamma"]),
        ({"createdTo": crowd["b"]["createdAt"]}, ["Alpha", "Beta"]),
        ({"customFields": {"tier": "gold"}}, ["Alpha"]),
        ({"customFields": {"seats": 10}}, ["Alpha", "Beta"]),  # 10 == 10.0
        ({"customFields": {"trial": True}}, ["Beta"]),
        ({"customFields": {"trial": False, "tier": "gold"}}, ["Alpha"]),
        ({"customFields": {"tier": "10"}}, []),
        ({"customFields": {"seats": "10"}}, []),  # a string is not the number
        ({"status": ["CUSTOMER"], "tags": ["eu"], "industry": ["retail"]}, ["Alpha"]),
    ]
    for filter_, expected in cases:
        assert await matching(client, h, filter_) == expected, filter_


async def test_saved_segments_crud_and_evaluation(client, crowd):
    h = crowd["h"]
    r = await client.post(
        "/api/v1/segments",
        json={
            "name": "EU VIPs",
            "description": "for the spring campaign",
            "filter": {"tags": ["eu"], "status": ["CUSTOMER", "LEAD"]},
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    segment = r.json()
    assert r.headers["location"] == f"/api/v1/segments/{segment['id']}" and r.headers["etag"] == 'W/"1"'
    assert segment["filter"]["tags"] == ["eu"] and segment["filter"]["status"] == ["CUSTOMER", "LEAD"]
    assert segment["version"] == 1

    page = (
        await client.get(
            f"/api/v1/segments/{segment['id']}/customers", params={"sort": "fullName"}, headers=h
        )
    ).json()
    assert page["total"] == 2 and [c["fullName"] for c in page["items"]] == ["Alpha", "Beta"]
    assert page["items"][0]["assignedToName"] == "Ann"
    one = (
        await client.get(
            f"/api/v1/segments/{segment['id']}/customers",
            params={"pageSize": 1, "page": 2, "sort": "-fullName"},
            headers=h,
        )
    ).json()
    assert one["total"] == 2 and [c["fullName"] for c in one["items"]] == ["Alpha"]

    dup = await client.post("/api/v1/segments", json={"name": "eu vips"}, headers=h)
    assert dup.status_code == 409 and dup.json()["code"] == "SEGMENT_NAME_EXISTS"

    upd = await client.patch(
        f"/api/v1/segments/{segment['id']}",
        json={"filter": {"tags": ["vip"]}, "name": "VIPs"},
        headers={**h, "If-Match": 'W/"1"'},
    )
    assert upd.status_code == 200 and upd.json()["version"] == 2 and upd.json()["name"] == "VIPs"
    stale = await client.patch(
        f"/api/v1/segments/{segment['id']}", json={"name": "X"}, headers={**h, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert (
        await client.patch(f"/api/v1/segments/{segment['id']}", json={"name": "X"}, headers=h)
    ).status_code == 428
    page = (
        await client.get(
            f"/api/v1/segments/{segment['id']}/customers", params={"sort": "fullName"}, headers=h
        )
    ).json()
    assert [c["fullName"] for c in page["items"]] == ["Alpha", "Gamma"]

    other = (await client.post("/api/v1/segments", json={"name": "All"}, headers=h)).json()
    listed = (await client.get("/api/v1/segments", headers=h)).json()
    assert [s["name"] for s in listed["items"]] == ["All", "VIPs"] and listed["total"] == 2
    assert [
        s["name"]
        for s in (await client.get("/api/v1/segments", params={"q": "vip"}, headers=h)).json()["items"]
    ] == ["VIPs"]
    taken = await client.patch(
        f"/api/v1/segments/{other['id']}", json={"name": "vips", "version": 1}, headers=h
    )
    assert taken.status_code == 409

    assert (await client.get(f"/api/v1/segments/{segment['id']}", headers=h)).json()["name"] == "VIPs"
    assert (
        await client.delete(f"/api/v1/segments/{segment['id']}", headers={**h, "If-Match": 'W/"1"'})
    ).status_code == 412
    assert (await client.delete(f"/api/v1/segments/{segment['id']}", headers=h)).status_code == 204
    assert (await client.get(f"/api/v1/segments/{segment['id']}", headers=h)).status_code == 404
    assert (await client.get(f"/api/v1/segments/{segment['id']}/customers", headers=h)).status_code == 404
    assert (await client.delete(f"/api/v1/segments/{segment['id']}", headers=h)).status_code == 404


BAD_FILTERS = [
    ({"status": ["WHALE"]}, "filter.status.0"),
    ({"totalValueMin": "10", "totalValueMax": "5"}, "filter"),
    ({"createdFrom": "2030-01-02T00:00:00Z", "createdTo": "2030-01-01T00:00:00Z"}, "filter"),
    ({"lastContactFrom": "2030-01-01T00:00:00"}, "filter.lastContactFrom"),  # no time zone
    ({"totalValueMin": "-1"}, "filter.totalValueMin"),
    ({"valueCurrency": "euro"}, "filter.valueCurrency"),
    ({"customFields": {"a": [1]}}, "filter.customFields.a.str"),
    ({"customFields": {'we"ird': 1}}, 'filter.customFields.we"ird.[key]'),
    ({"colour": "red"}, "filter.colour"),
    ({"tags": "vip"}, "filter.tags"),
]


async def test_a_null_name_or_filter_is_refused_and_a_null_description_clears(client, auth_headers):
    h = auth_headers()
    body = {"name": "VIPs", "description": "the best", "filter": {"tags": ["vip"]}}
    segment = (await client.post("/api/v1/segments", json=body, headers=h)).json()
    url = f"/api/v1/segments/{segment['id']}"
    for field in ("name", "filter"):
        r = await client.patch(url, json={field: None, "version": 1}, headers=h)
        assert (r.status_code, r.json()["code"]) == (422, "VALIDATION_ERROR"), r.text
        assert [e["field"] for e in r.json()["errors"]] == [field]
        assert (await client.get(url, headers=h)).json() == segment
    cleared = await client.patch(url, json={"description": None, "version": 1}, headers=h)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == {
        **segment,
        "description": None,
        "version": 2,
        "updatedAt": cleared.json()["updatedAt"],
    }


async def test_bad_filters_are_422(client, auth_headers):
    for filter_, field in BAD_FILTERS:
        h = auth_headers()
        r = await client.post("/api/v1/customers/segments/preview", json={"filter": filter_}, headers=h)
        assert r.status_code == 422, r.text
        assert field in {e["field"] for e in r.json()["errors"]}, r.json()["errors"]
        saved = await client.post("/api/v1/segments", json={"name": "bad", "filter": filter_}, headers=h)
        assert saved.status_code == 422
        assert (await client.get("/api/v1/segments", headers=h)).json()["total"] == 0


async def test_segment_bad_input_and_access(client, auth_headers):
    h = auth_headers()
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": "ok", "owner": 1}):
        assert (await client.post("/api/v1/segments", json=body, headers=h)).status_code == 422, body
    assert (await client.get("/api/v1/segments", params={"sort": "size"}, headers=h)).status_code == 422
    assert (await client.get(f"/api/v1/segments/{uuid.uuid4()}", headers=h)).status_code == 404
    assert (await client.get("/api/v1/segments", headers=auth_headers("nobody"))).status_code == 403
    assert (
        await client.post("/api/v1/customers/segments/preview", json={}, headers=auth_headers("nobody"))
    ).status_code == 403
    assert (await client.get("/api/v1/segments")).status_code == 401
