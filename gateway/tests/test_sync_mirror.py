"""A mirror kept by incremental sync converges on the server's state (issue 17, item 2): while 1,000
writes, merges and deletions run concurrently, one client mirrors customers through the list's
`updatedAfter` + cursor, others through the changes feeds of customers and activities (tombstones for
merged-away and deleted records). Once the writes stop, each mirror holds exactly what the server
holds, record for record, field for field."""

import asyncio
import random

import pytest
from crm_common.testing.mirror import FeedMirror, ListMirror, server_state
from crm_common.testing.plugin import admitted, eventually, running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_dashboard import settings_for

WRITES = 1000
CONCURRENCY = 16


@pytest.fixture
async def gateway(tmp_path):
    # One admin credential makes thousands of calls here: the per-credential rate limit is not under test.
    settings = settings_for(tmp_path, rate_limit_enabled=False)
    async with running(create_embedded_app(settings, only=("customer", "activity"))) as gw:
        yield gw


class Writer:
    """1,000 random writes: customers created, edited and merged; activities created, edited and
    deleted. Conflicts (a merge of an already merged customer, a stale version) are answered with a
    4xx and change nothing, which the mirror must show as well."""

    def __init__(self, gw, headers, seed=17):
        self.gw, self.headers, self.rng = gw, headers, random.Random(seed)
        self.customers: list[str] = []
        self.activities: list[str] = []
        self.statuses: list[int] = []

    async def call(self, method, path, **kwargs):
        for _ in range(20):
            r = await admitted(
                lambda: self.gw.request(method, f"/api/v1{path}", headers=self.headers, **kwargs)
            )
            # A busy machine can time out the activity service's question to the customer service:
            # a 503 that wrote nothing and says to try again, which a client does.
            if r.status_code != 503 or r.json().get("code") != "CUSTOMER_SERVICE_UNAVAILABLE":
                break
            await asyncio.sleep(0.5)
        assert r.status_code < 500, r.text
        self.statuses.append(r.status_code)
        return r

    async def one(self, i: int) -> None:
        rng = self.rng
        kind = rng.choices(
            ["customer", "edit", "merge", "activity", "edit_activity", "delete_activity"],
            weights=[30, 25, 6, 20, 12, 7],
        )[0]
        if kind != "customer" and len(self.customers) < 2:
            kind = "customer"
        if kind in ("edit_activity", "delete_activity") and not self.activities:
            kind = "activity"
        if kind == "customer":
            r = await self.call(
                "POST", "/customers", json={"firstName": f"C{i}", "email": f"c{i}@example.com"}
            )
            assert r.status_code == 201, r.text
            self.customers.append(r.json()["id"])
        elif kind == "edit":
            await self.call(
                "PATCH",
                f"/customers/{rng.choice(self.customers)}",
                json={"notes": f"edit {i}", "priority": rng.choice(["LOW", "MEDIUM", "HIGH"])},
            )
        elif kind == "merge":
            primary, secondary = rng.sample(self.customers, 2)
            await self.call(
                "POST",
                "/customers/merge",
                json={"primaryCustomerId": primary, "secondaryCustomerId": secondary},
            )
        elif kind == "activity":
            r = await self.call(
                "POST",
                "/activities",
                json={
                    "type": "CALL",
                    "subject": f"Call {i}",
                    "customerId": rng.choice(self.customers),
                    "startDate": "2030-01-01T10:00:00Z",
                },
            )
            if r.status_code == 201:
                self.activities.append(r.json()["id"])
        else:
            activity = rng.choice(self.activities)
            got = await self.call("GET", f"/activities/{activity}")
            if got.status_code != 200:
                return
            if kind == "edit_activity":
                body = {"subject": f"Edited {i}", "version": got.json()["version"]}
                await self.call("PATCH", f"/activities/{activity}", json=body)
            else:
                await self.call("DELETE", f"/activities/{activity}")

    async def run(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def bounded(i):
            async with gate:
                await self.one(i)

        await asyncio.gather(*(bounded(i) for i in range(WRITES)))


async def test_mirrors_converge_on_the_server_state_under_concurrent_writes(gateway):
    gw = gateway
    admin = await login(gw)
    writer = Writer(gw, admin)
    by_list = ListMirror(gw, admin)
    customer_feed = FeedMirror(gw, admin, "/customers")
    activity_feed = FeedMirror(gw, admin, "/activities")
    mirrors = (by_list, customer_feed, activity_feed)
    syncs = 0

    async def keep_syncing(done: asyncio.Event) -> None:
        nonlocal syncs
        while not done.is_set():
            for mirror in mirrors:
                await mirror.sync()
            syncs += 1
            await asyncio.sleep(0.05)

    done = asyncio.Event()
    syncing = asyncio.create_task(keep_syncing(done))
    await writer.run()
    done.set()
    await syncing
    # The mirrors really synced while the writes ran, and the writes included every kind of change.
    assert syncs >= 3
    assert writer.statuses.count(204) > 0  # deletions
    merged = await server_state(gw, admin, "/customers")
    assert sum(1 for c in merged.values() if c["mergedIntoId"]) > 0  # merges

    async def converged() -> bool:
        # Events still being applied (system notes, re-pointing) keep changing the server a little
        # while after the last write; compare once a sync and the server agree.
        for mirror in mirrors:
            await mirror.sync()
        customers = await server_state(gw, admin, "/customers")
        activities = await server_state(gw, admin, "/activities")
        assert by_list.rows == customers
        assert customer_feed.rows == {i: c for i, c in customers.items() if not c["mergedIntoId"]}
        assert activity_feed.rows == activities
        return True

    await eventually(converged, timeout=60, interval=0.5)
    customers = await server_state(gw, admin, "/customers")

    # Every merged-away customer came through the feed as a tombstone naming its survivor: the end of
    # its chain of merges on the server.
    def survivor(customer_id: str) -> str:
        while customers[customer_id]["mergedIntoId"]:
            customer_id = customers[customer_id]["mergedIntoId"]
        return customer_id

    assert customer_feed.merged_into == {i: survivor(i) for i, c in customers.items() if c["mergedIntoId"]}
    assert len(activity_feed.rows) > 0 and len(customers) > 100
