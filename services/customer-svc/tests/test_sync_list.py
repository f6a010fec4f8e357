"""Incremental sync on the customer list: `updatedAfter` / `createdAfter` and cursor mode."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import create, deliver, opportunity_event, settled


async def cursor_pages(client, headers, **params) -> list[list[dict]]:
    pages, cursor = [], ""
    while cursor is not None:
        r = await client.get("/api/v1/customers", params={**params, "cursor": cursor}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["items"])
        cursor = body.get("next")
    return pages


async def test_updated_after_and_created_after_filter(client, auth_headers):
    headers = auth_headers()
    old = await create(client, headers, firstName="Old")
    mark = datetime.now(UTC)
    await asyncio.sleep(0.01)
    new = await create(client, headers, firstName="New")

    def ids(r):
        assert r.status_code == 200, r.text
        return {c["id"] for c in r.json()["items"]}

    since = {"updatedAfter": mark.isoformat()}
    assert ids(await client.get("/api/v1/customers", params=since, headers=headers)) == {new["id"]}
    r = await client.patch(
        f"/api/v1/customers/{old['id']}",
        json={"notes": "changed", "version": old["version"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert ids(await client.get("/api/v1/customers", params=since, headers=headers)) == {new["id"], old["id"]}
    created = {"createdAfter": mark.isoformat().replace("+00:00", "Z")}
    assert ids(await client.get("/api/v1/customers", params=created, headers=headers)) == {new["id"]}
    # Page mode answers exactly the shape it always had.
    r = await client.get("/api/v1/customers", headers=headers)
    assert set(r.json()) == {"items", "total", "page", "pageSize"}


@pytest.mark.parametrize(
    "value", ["yesterday", "2026-01-01", "1700000000", "2026-01-01T10:00:00", "2026-13-01T00:00:00Z"]
)
async def test_bad_timestamps_are_422_naming_the_parameter(client, auth_headers, value):
    for name in ("updatedAfter", "createdAfter"):
        r = await client.get("/api/v1/customers", params={name: value}, headers=auth_headers())
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == [name]


async def test_bad_cursor_and_cursor_with_sort_are_422(client, auth_headers):
    r = await client.get("/api/v1/customers", params={"cursor": "not-ours"}, headers=auth_headers())
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["cursor"]
    r = await client.get(
        "/api/v1/customers", params={"cursor": "", "sort": "fullName"}, headers=auth_headers()
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["sort"]


async def test_cursor_pages_in_sync_order_and_ends_without_next(client, auth_headers):
    headers = auth_headers()
    made = [await create(client, headers, firstName=f"C{i}") for i in range(7)]
    await settled(client)
    pages = await cursor_pages(client, headers, pageSize=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    seen = [c for p in pages for c in p]
    assert [c["id"] for c in seen] == [c["id"] for c in made]
    keys = [(c["updatedAt"], c["id"]) for c in seen]
    assert keys == sorted(keys)


async def test_cursor_is_stable_under_writes_between_pages(client, auth_headers):
    """A record changed after it was read comes again later; none is skipped or read twice in
    between, whatever is written while the client pages."""
    headers = auth_headers()
    made = [await create(client, headers, firstName=f"C{i}") for i in range(6)]
    await settled(client)
    r = await client.get("/api/v1/customers", params={"cursor": "", "pageSize": 2}, headers=headers)
    first = r.json()
    assert [c["id"] for c in first["items"]] == [made[0]["id"], made[1]["id"]]
    # Between pages: the first record read changes and a new one arrives.
    r = await client.patch(
        f"/api/v1/customers/{made[0]['id']}",
        json={"notes": "again", "version": made[0]["version"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    late = await create(client, headers, firstName="Late")
    await settled(client)
    rest, cursor = [], first["next"]
    while cursor:
        r = await client.get("/api/v1/customers", params={"cursor": cursor, "pageSize": 2}, headers=headers)
        assert r.status_code == 200, r.text
        rest += r.json()["items"]
        cursor = r.json().get("next")
    expected = [made[2]["id"], made[3]["id"], made[4]["id"], made[5]["id"], made[0]["id"], late["id"]]
    assert [c["id"] for c in rest] == expected
    assert rest[4]["notes"] == "again"


async def test_changes_made_by_consumers_bump_updated_at(client, auth_headers):
    headers = auth_headers()
    customer = await create(client, headers)
    mark = datetime.fromisoformat(customer["updatedAt"])
    await asyncio.sleep(0.01)
    await deliver(client, opportunity_event(customer["id"], amount="250.00"))
    r = await client.get(
        "/api/v1/customers",
        params={"updatedAfter": (mark + timedelta(microseconds=1)).isoformat()},
        headers=headers,
    )
    assert [c["id"] for c in r.json()["items"]] == [customer["id"]]
