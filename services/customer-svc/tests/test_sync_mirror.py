"""The mirror test on customer-svc alone, on SQLite and on Postgres (where cursor pages hold back for
open transactions and a settle second): while 1,000 concurrent creations, edits and merges run, a
mirror kept by `updatedAfter` + cursor and one kept by the changes feed end with exactly the server's
customers. (gateway/tests/test_sync_mirror.py runs the embedded platform with deletions as well.)"""

import asyncio
import random

from crm_common.testing.mirror import FeedMirror, ListMirror, server_state
from crm_common.testing.plugin import admitted, eventually

WRITES = 1000
CONCURRENCY = 16


async def test_mirrors_converge_under_concurrent_writes_and_merges(client, auth_headers):
    headers = auth_headers()
    rng = random.Random(17)
    customers: list[str] = []
    merges = 0

    async def write(i: int) -> None:
        nonlocal merges
        kind = (
            rng.choices(["create", "edit", "merge"], weights=[45, 45, 10])[0]
            if len(customers) > 2
            else "create"
        )
        if kind == "create":
            r = await admitted(
                lambda: client.post(
                    "/api/v1/customers",
                    json={"firstName": f"C{i}", "email": f"c{i}@example.com"},
                    headers=headers,
                )
            )
            assert r.status_code == 201, r.text
            customers.append(r.json()["id"])
        elif kind == "edit":
            body = {"notes": f"edit {i}", "priority": rng.choice(["LOW", "HIGH"])}
            r = await admitted(
                lambda: client.patch(f"/api/v1/customers/{rng.choice(customers)}", json=body, headers=headers)
            )
            assert r.status_code < 500, r.text
        else:
            primary, secondary = rng.sample(customers, 2)
            body = {"primaryCustomerId": primary, "secondaryCustomerId": secondary}
            r = await admitted(lambda: client.post("/api/v1/customers/merge", json=body, headers=headers))
            assert r.status_code < 500, r.text
            merges += r.status_code == 200

    by_list, by_feed = ListMirror(client, headers), FeedMirror(client, headers, "/customers")
    done = asyncio.Event()
    syncs = 0

    async def keep_syncing() -> None:
        nonlocal syncs
        while not done.is_set():
            await by_list.sync()
            await by_feed.sync()
            syncs += 1
            await asyncio.sleep(0.05)

    syncing = asyncio.create_task(keep_syncing())
    gate = asyncio.Semaphore(CONCURRENCY)

    async def bounded(i):
        async with gate:
            await write(i)

    await asyncio.gather(*(bounded(i) for i in range(WRITES)))
    done.set()
    await syncing
    assert syncs >= 3 and merges > 0

    async def converged() -> bool:
        await by_list.sync()
        await by_feed.sync()
        server = await server_state(client, headers, "/customers")
        assert by_list.rows == server
        assert by_feed.rows == {i: c for i, c in server.items() if not c["mergedIntoId"]}
        return True

    # On Postgres the newest changes show once they are a settle second old.
    await eventually(converged, timeout=60, interval=0.5)
