"""What a consistency token costs a read (crm_common.consistency), embedded default.

    .venv/bin/python bench/consistency_bench.py [--pairs 100] [--distributed]

Embedded: one process, SQLite files in a temporary folder, events on the in-process bus.
--distributed: one process per service and the gateway (`crm serve`), a scratch Postgres database and
a namespaced set of RabbitMQ queues (removed afterwards), requests over HTTP through the gateway;
it also times the fallback customer lookup (customer-svc's internal endpoint over HTTP).
For each round, side by side in one run:
- baseline: GET /api/v1/opportunities/{id} of an opportunity that exists, without a token;
- token:    convert a lead with an opportunity draft, then GET that opportunity with the convert's
  CRM-Consistency-Token (pipeline-svc creates it from customer.converted: the read waits for it).
Prints p50/p90/p99 of both reads, how many were answered `stale`, and the difference of the medians.
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from crm_common.customer_lookup import CustomerLookup
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "bench-Password-1"
ADMIN = "b@example.com"
SERVICE_TOKEN = uuid.uuid4().hex
TOKEN = "CRM-Consistency-Token"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def rounds(gw, h: dict, pairs: int) -> None:
    async def converted() -> tuple[str, str]:
        body = {"firstName": "B", "lastName": "Ench", "email": f"{uuid.uuid4().hex}@example.com"}
        lead = (await gw.post("/api/v1/customers", json=body, headers=h)).json()
        r = await gw.post(
            f"/api/v1/customers/{lead['id']}/convert", json={"opportunity": {"title": "T"}}, headers=h
        )
        assert r.status_code == 200, r.text
        return r.json()["opportunity"]["opportunityId"], r.headers[TOKEN]

    async def read(opportunity_id: str, headers: dict) -> tuple[float, bool]:
        started = time.perf_counter()
        r = await gw.get(f"/api/v1/opportunities/{opportunity_id}", headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert r.status_code == 200, r.text
        return elapsed, r.headers.get("crm-consistency") == "stale"

    existing, first_token = await converted()
    await read(existing, {**h, TOKEN: first_token})
    base, waited, stale = [], [], 0
    for _ in range(pairs):
        base.append((await read(existing, h))[0])
        opportunity_id, tok = await converted()
        elapsed, was_stale = await read(opportunity_id, {**h, TOKEN: tok})
        waited.append(elapsed)
        stale += was_stale
    print(f"rounds: {pairs}, answered stale: {stale}")
    for name, values in (("baseline read (no token)", base), ("read with token", waited)):
        print(
            f"{name:26s} p50 {pct(values, 0.5):7.2f} ms  p90 {pct(values, 0.9):7.2f} ms  "
            f"p99 {pct(values, 0.99):7.2f} ms"
        )
    print(f"added by the token (median): {statistics.median(waited) - statistics.median(base):.2f} ms")


async def lookups(gw, h: dict, customer_url: str, count: int) -> None:
    """The call a context makes to customer-svc for a customer it has not heard of (HTTP, service
    credential): what a fallback lookup adds to the write that needs it, besides one upsert."""
    ids = []
    for _ in range(count):
        body = {"firstName": "L", "lastName": "Ookup", "email": f"{uuid.uuid4().hex}@example.com"}
        ids.append(uuid.UUID((await gw.post("/api/v1/customers", json=body, headers=h)).json()["id"]))
    lookup = CustomerLookup.remote(customer_url, token=SERVICE_TOKEN)
    try:
        await lookup.fetch(ids[0])
        took = []
        for cid in ids:
            started = time.perf_counter()
            assert await lookup.fetch(cid) is not None
            took.append((time.perf_counter() - started) * 1000)
    finally:
        await lookup.close()
    print(
        f"{'fallback lookup (HTTP)':26s} p50 {pct(took, 0.5):7.2f} ms  p90 {pct(took, 0.9):7.2f} ms  "
        f"p99 {pct(took, 0.99):7.2f} ms"
    )


async def login(gw) -> dict:
    r = await gw.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def embedded(pairs: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = GatewaySettings(data_dir=Path(folder), admin_password=PASSWORD, admin_email=ADMIN)
        app = create_embedded_app(settings, only=("customer", "pipeline"))
        async with running(app) as gw:
            await rounds(gw, await login(gw), pairs)


async def distributed(pairs: int) -> None:
    import _support
    from crm_gateway.distributed import run_distributed

    log = _support.logger("consistency")
    server = os.environ.get("CRM_BENCH_DATABASE_URL", _support.DEFAULT_PG)
    amqp = os.environ.get("CRM_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    namespace = f"bench-{uuid.uuid4().hex[:8]}."
    name = f"crm_bench_{uuid.uuid4().hex[:8]}"
    async with _support.scratch_database(server, name, keep=False, log=log) as url:
        try:
            with tempfile.TemporaryDirectory() as folder:
                base = _support.free_port()
                with run_distributed(
                    database_url=url,
                    amqp_url=amqp,
                    data_dir=Path(folder),
                    gateway_port=base,
                    service_base_port=base + 1,
                    events_namespace=namespace,
                    extra_env={
                        "CRM_ADMIN_EMAIL": ADMIN,
                        "CRM_ADMIN_PASSWORD": PASSWORD,
                        "CRM_SERVICE_TOKEN": SERVICE_TOKEN,
                    },
                    startup_timeout=120,
                ) as gateway:
                    async with httpx.AsyncClient(base_url=gateway, timeout=30) as gw:
                        h = await login(gw)
                        await rounds(gw, h, pairs)
                        await lookups(gw, h, f"http://127.0.0.1:{base + 1}", pairs)
        finally:
            await _support.delete_broker_objects(amqp, namespace, log)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--distributed", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run((distributed if args.distributed else embedded)(args.pairs)))
