"""Mirror clients for incremental-sync tests (docs/sync.md): what an integrator's code does, kept here
once for the tests of every run mode and database."""

from collections.abc import Mapping
from typing import Any

import httpx

# A record as the API returns it (JSON).
Record = dict[str, Any]


class ListMirror:
    """Records from `GET <path>?updatedAfter=...&cursor=...`: every page of the cursor, then the last
    item's `updatedAt` to resume from next time (docs/sync.md)."""

    def __init__(self, client: httpx.AsyncClient, headers: Mapping[str, str], path: str = "/customers"):
        self.client, self.headers, self.path = client, headers, path
        self.rows: dict[str, Record] = {}
        self.since: str | None = None

    async def sync(self) -> None:
        cursor: str | None = ""
        while cursor is not None:
            params: dict[str, str | int] = {"cursor": cursor, "pageSize": 50}
            if self.since:
                params["updatedAfter"] = self.since
            r = await self.client.get(f"/api/v1{self.path}", params=params, headers=self.headers)
            assert r.status_code == 200, r.text
            body = r.json()
            for item in body["items"]:
                self.rows[item["id"]] = item
            cursor = body.get("next")
            if body["items"] and cursor is None:
                self.since = body["items"][-1]["updatedAt"]


class FeedMirror:
    """Records from `GET /<resource>/changes`: upsert records, drop tombstones, keep `next`."""

    def __init__(self, client: httpx.AsyncClient, headers: Mapping[str, str], path: str):
        self.client, self.headers, self.path, self.cursor = client, headers, path, ""
        self.rows: dict[str, Record] = {}
        self.merged_into: dict[str, str] = {}

    async def sync(self) -> None:
        more = True
        while more:
            r = await self.client.get(
                f"/api/v1{self.path}/changes",
                params={"cursor": self.cursor, "pageSize": 50},
                headers=self.headers,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            for item in body["items"]:
                if item.get("deleted"):
                    self.rows.pop(item["id"], None)
                    if item["mergedInto"]:
                        self.merged_into[item["id"]] = item["mergedInto"]
                else:
                    self.rows[item["id"]] = item
            self.cursor, more = body["next"], body["hasMore"]


async def server_state(client: httpx.AsyncClient, headers: Mapping[str, str], path: str) -> dict[str, Record]:
    """Every record of a list as the server holds it now (page mode)."""
    rows: dict[str, Record] = {}
    page = 1
    while True:
        r = await client.get(f"/api/v1{path}", params={"page": page, "pageSize": 200}, headers=headers)
        assert r.status_code == 200, r.text
        rows.update({item["id"]: item for item in r.json()["items"]})
        if page * 200 >= r.json()["total"]:
            return rows
        page += 1
