"""Benchmark of campaign-svc on Postgres: interaction ingestion rate (batches of 500) and the metrics
endpoint's latency on a campaign with `--targets` members (default 1,000,000).

    .venv/bin/python bench/campaign_bench.py [--targets 1000000] [--batches 200] [--requests 500]

In a fresh schema of the local Postgres (dropped afterwards):
1. load: campaign-svc's migrations, one ACTIVE campaign through the API, then `--targets` members
   built in Postgres with INSERT ... SELECT generate_series (customer ids derived from md5, so the
   load generator can name them), ANALYZE;
2. ingestion: `--batches` POST /campaigns/{id}/interactions of `--batch-size` interactions (random
   members, random kinds, unique external ids), one after the other (a campaign's batches are
   serialized by its row lock anyway), over the in-process ASGI transport; figure = interactions
   recorded per second. Baseline: the same rows inserted by a bare asyncpg executemany, one
   transaction per batch, into a scratch table without indexes;
3. metrics: GET /campaigns/{id}/metrics `--requests` times, p50/p99. Baseline: one asyncpg SELECT of
   the campaign row.

The app runs in this process (no HTTP server, no broker: the in-process bus), so the figures are
the service's own cost, not the network's.
"""

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from _support import DEFAULT_PG, logger, md5_uuid, percentile, signing_keys, token
from campaign_svc.app import create_app
from campaign_svc.settings import Settings
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import running

KINDS = ["SENT", "DELIVERED", "OPENED", "CLICKED", "RESPONDED", "BOUNCED", "UNSUBSCRIBED"]
WEIGHTS = [30, 30, 20, 10, 4, 4, 2]

log = logger("bench")


def customer_id(i: int) -> uuid.UUID:
    return md5_uuid(f"c{i}")


async def main(args) -> None:
    schema = f"campaign_bench_{uuid.uuid4().hex[:8]}"
    private, public = signing_keys()
    headers = {"Authorization": f"Bearer {token(private, 'marketer')}"}
    settings = Settings(
        database_url=args.database_url, db_schema=schema, jwt_public_key=public, log_level="WARNING"
    )
    conn = await asyncpg.connect(args.database_url)
    bus = MemoryBus()
    try:
        app = create_app(settings, bus=bus)
        async with running(app) as client:
            start = datetime.now(UTC) - timedelta(days=1)
            r = await client.post(
                "/api/v1/campaigns",
                json={
                    "name": "Bench",
                    "type": "EMAIL",
                    "startDate": start.isoformat(),
                    "actualCost": "1000.00",
                },
                headers=headers,
            )
            campaign_id = r.json()["id"]
            r = await client.post(f"/api/v1/campaigns/{campaign_id}/activate", headers=headers)
            assert r.status_code == 200, r.text
            log(f"loading {args.targets:,} targets into {schema}")
            t0 = time.perf_counter()
            await conn.execute(
                f"""INSERT INTO "{schema}".campaign_targets (id, campaign_id, customer_id, status, added_at, updated_at)
                SELECT gen_random_uuid(), $1::uuid, md5('c' || i)::uuid, 'TARGETED', now(), now()
                FROM generate_series(0, $2 - 1) AS i""",
                uuid.UUID(campaign_id),
                args.targets,
            )
            await conn.execute(
                f'UPDATE "{schema}".campaigns SET target_count = $2 WHERE id = $1',
                uuid.UUID(campaign_id),
                args.targets,
            )
            await conn.execute(f'ANALYZE "{schema}".campaign_targets')
            log(f"loaded in {time.perf_counter() - t0:.1f} s")

            rng = random.Random(1)
            now = datetime.now(UTC) - timedelta(minutes=1)

            def batch(b: int) -> list[dict]:
                return [
                    {
                        "customerId": str(customer_id(rng.randrange(args.targets))),
                        "kind": rng.choices(KINDS, WEIGHTS)[0],
                        "occurredAt": (now - timedelta(seconds=rng.randrange(80000))).isoformat(),
                        "externalId": f"b{b}-{n}",
                    }
                    for n in range(args.batch_size)
                ]

            batches = [batch(b) for b in range(args.batches + args.warmup)]
            for b in batches[: args.warmup]:
                r = await client.post(
                    f"/api/v1/campaigns/{campaign_id}/interactions", json={"interactions": b}, headers=headers
                )
                assert r.status_code == 200, r.text
            latencies = []
            t0 = time.perf_counter()
            for b in batches[args.warmup :]:
                s = time.perf_counter()
                r = await client.post(
                    f"/api/v1/campaigns/{campaign_id}/interactions", json={"interactions": b}, headers=headers
                )
                latencies.append(time.perf_counter() - s)
                assert r.status_code == 200, r.text
            elapsed = time.perf_counter() - t0
            total = args.batches * args.batch_size
            print(
                f"ingestion: {total:,} interactions in {args.batches} batches of {args.batch_size}: "
                f"{total / elapsed:,.0f}/s; batch p50 {percentile(latencies, 50) * 1000:.1f} ms, "
                f"p99 {percentile(latencies, 99) * 1000:.1f} ms"
            )
            camp = (await client.get(f"/api/v1/campaigns/{campaign_id}", headers=headers)).json()
            print(
                f"  counters: sent {camp['sentCount']:,} delivered {camp['deliveredCount']:,} "
                f"opened {camp['openCount']:,} clicked {camp['clickCount']:,}"
            )

            # baseline: bare inserts of the same rows
            await conn.execute(
                f'CREATE TABLE "{schema}".bare (id uuid, campaign_id uuid, customer_id uuid, kind text, '
                "occurred_at timestamptz, external_id text)"
            )
            t0 = time.perf_counter()
            for b in batches[args.warmup :]:
                async with conn.transaction():
                    await conn.executemany(
                        f'INSERT INTO "{schema}".bare VALUES ($1, $2, $3, $4, $5, $6)',
                        [
                            (
                                uuid.uuid4(),
                                uuid.UUID(campaign_id),
                                uuid.UUID(i["customerId"]),
                                i["kind"],
                                datetime.fromisoformat(i["occurredAt"]),
                                i["externalId"],
                            )
                            for i in b
                        ],
                    )
            base = time.perf_counter() - t0
            print(f"  baseline (bare executemany INSERT, one transaction per batch): {total / base:,.0f}/s")

            for _ in range(20):
                await client.get(f"/api/v1/campaigns/{campaign_id}/metrics", headers=headers)
            lat = []
            for _ in range(args.requests):
                s = time.perf_counter()
                r = await client.get(f"/api/v1/campaigns/{campaign_id}/metrics", headers=headers)
                lat.append(time.perf_counter() - s)
                assert r.status_code == 200
            print(
                f"metrics: {args.requests} requests on {args.targets:,} targets: p50 "
                f"{percentile(lat, 50) * 1000:.2f} ms, p99 {percentile(lat, 99) * 1000:.2f} ms"
            )
            lat = []
            for _ in range(args.requests):
                s = time.perf_counter()
                await conn.fetchrow(
                    f'SELECT * FROM "{schema}".campaigns WHERE id = $1', uuid.UUID(campaign_id)
                )
                lat.append(time.perf_counter() - s)
            print(
                f"  baseline (one asyncpg SELECT of the campaign row): p50 {percentile(lat, 50) * 1000:.2f} ms, "
                f"p99 {percentile(lat, 99) * 1000:.2f} ms"
            )
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await bus.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    asyncio.run(main(parser.parse_args()))
