"""Batch upsert of 100 customers against 100 single creates (issue 17, item 3).

    .venv/bin/python bench/batch_upsert.py [--rounds 5] [--size 100] [--no-postgres]

customer-svc runs in this process (its real app: migrations, auth, idempotency middleware, outbox),
driven over ASGI by httpx, once on SQLite (the embedded default) and once on a scratch Postgres
database when one answers. Each round, on the same database:
- singles: `--size` `POST /api/v1/customers`, one after another (as a client without batches does);
- batch create: one `POST /api/v1/customers/batch/upsert` of `--size` new customers (all 201);
- batch update: the same request again (all 200: found by email, updated).
Printed: the median wall time of each per round and per customer, and the speed-up of the batch.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from _support import DEFAULT_PG, logger, scratch_database, signing_keys, token
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import running
from customer_svc.app import create_app
from customer_svc.settings import Settings

log = logger("batch_upsert")


def people(size: int, tag: str) -> list[dict]:
    return [{"firstName": f"P{i}", "lastName": tag, "email": f"p{i}.{tag}@example.com"} for i in range(size)]


async def measure(database_url: str, data_dir: Path, rounds: int, size: int) -> dict:
    private, public = signing_keys()
    settings = Settings(
        database_url=database_url, db_schema="customer", jwt_public_key=public, data_dir=data_dir
    )
    app = create_app(settings, bus=MemoryBus())
    headers = {"Authorization": f"Bearer {token(private, 'admin')}"}
    singles, creates, updates = [], [], []
    async with running(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=120) as client:
            for n in range(rounds + 1):  # round 0 warms up and is not counted
                started = time.perf_counter()
                for body in people(size, f"s{n}"):
                    r = await client.post("/api/v1/customers", json=body, headers=headers)
                    assert r.status_code == 201, r.text
                single = time.perf_counter() - started

                load = {"items": people(size, f"b{n}")}
                started = time.perf_counter()
                r = await client.post("/api/v1/customers/batch/upsert", json=load, headers=headers)
                create = time.perf_counter() - started
                assert r.status_code == 200 and r.json()["succeeded"] == size, r.text
                assert {x["status"] for x in r.json()["results"]} == {201}

                for item in load["items"]:
                    item["notes"] = "updated"
                started = time.perf_counter()
                r = await client.post("/api/v1/customers/batch/upsert", json=load, headers=headers)
                update = time.perf_counter() - started
                assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {200}, r.text
                if n:
                    singles.append(single)
                    creates.append(create)
                    updates.append(update)
                log(
                    f"round {n}: singles {single:.2f}s, batch create {create:.2f}s, batch update {update:.2f}s"
                )

    def figures(samples: list[float]) -> dict:
        median = statistics.median(samples)
        return {"median_s": round(median, 3), "per_customer_ms": round(median / size * 1000, 2)}

    single, create, update = figures(singles), figures(creates), figures(updates)
    return {
        f"{size}_single_creates": single,
        f"batch_upsert_{size}_new": create,
        f"batch_upsert_{size}_existing": update,
        "speedup_batch_create_vs_singles": round(single["median_s"] / create["median_s"], 1),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres", default=DEFAULT_PG)
    args = parser.parse_args()
    results = {"rounds": args.rounds, "size": args.size}
    with tempfile.TemporaryDirectory(prefix="crm-batch-bench-") as tmp:
        log("SQLite (embedded default)")
        url = f"sqlite:///{tmp}/customer.db"
        results["sqlite"] = await measure(url, Path(tmp), args.rounds, args.size)
        if not args.no_postgres:
            log("Postgres")
            name = f"crm_batchbench_{uuid.uuid4().hex[:8]}"
            async with scratch_database(args.postgres, name, keep=False, log=log) as pg_url:
                results["postgres"] = await measure(pg_url, Path(tmp), args.rounds, args.size)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
