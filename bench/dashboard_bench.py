"""Benchmark of GET /api/v1/dashboard on the service benchmarks' data sets, distributed mode on Postgres.

In one invocation:
1. creates a fresh database `crm_dashbench_<hex>` and migrates every schema (`crm migrate all`);
2. fills it with the service benchmarks' own loaders: customer_bench.seed (`--customers`, a third
   with won value in USD, EUR or GBP, so the ranking has three currencies), pipeline_bench.seed
   (`--opportunities`: 40% open over four stages, 35% won, 25% lost, in three currencies) and
   activity_bench.load (`--activities`);
3. starts the gateway, customer-, pipeline- and activity-svc as their own processes (`crm serve`),
   with RabbitMQ under a throw-away namespace;
4. measures, with one aiohttp client, the dashboard `--requests` times one at a time after a
   warm-up (p50/p99, and every widget's status, which must be `ok`), then `--concurrency` clients
   for `--seconds`; and each widget's source call straight to its service, one at a time, so the
   figure can be attributed;
5. prints a table, then drops the database (unless `--keep`) and the broker objects.

    .venv/bin/python bench/dashboard_bench.py
    .venv/bin/python bench/dashboard_bench.py --customers 20000 --opportunities 100000 --activities 200000
"""

import argparse
import asyncio
import os
import time
import uuid
from types import SimpleNamespace

import activity_bench
import aiohttp
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    logger,
    login,
    percentile,
    sales_stack,
    seed_sales,
    throughput,
)

log = logger("dashboard-bench")


async def load(db_url: str, args) -> dict:
    # The opportunities' customers are drawn from 50k ids whatever --customers says, as before.
    seconds = await seed_sales(
        db_url, customers=args.customers, opportunities=args.opportunities, pipeline_customers=50_000
    )
    t = time.perf_counter()
    await activity_bench.load(
        db_url, SimpleNamespace(activities=args.activities, customers=20_000, hot=0, owners=200)
    )
    seconds["activities"] = time.perf_counter() - t
    return seconds


async def timed(session, url: str, headers: dict, n: int, params: dict | None = None) -> tuple[list, dict]:
    samples, body = [], None
    for _ in range(n):
        t = time.perf_counter()
        async with session.get(url, params=params, headers=headers) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"GET {url}: {r.status} {body}")
        samples.append((time.perf_counter() - t) * 1000)
    return samples, body


async def measure(args, base: dict[str, str]) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency * 2)) as session:
        headers = {"Authorization": f"Bearer {await login(session, base['gateway'], args.password)}"}
        dashboard = f"{base['gateway']}/api/v1/dashboard"
        await timed(session, dashboard, headers, 20)  # warm connections, pools and plans
        samples, body = await timed(session, dashboard, headers, args.requests)
        statuses = {k: v["status"] for k, v in body["widgets"].items()}
        if set(statuses.values()) != {"ok"}:
            raise RuntimeError(f"a widget is not ok: {body['widgets']}")
        per_second = await throughput(session, lambda: dashboard, headers, args.concurrency, args.seconds)
        sources = [
            (
                "pipeline board (salesMetrics, funnel)",
                "pipeline",
                "/api/v1/opportunities/board",
                {"cardsPerColumn": 1},
            ),
            (
                "customer count by status (x3)",
                "customer",
                "/api/v1/customers",
                {"status": "LEAD", "pageSize": 1},
            ),
            ("activity feed (recentActivities)", "activity", "/api/v1/activities/feed", {"limit": 10}),
            (
                "customer ranking (topCustomers)",
                "customer",
                "/api/v1/customers/ranking",
                {"limit": 5, "status": "CUSTOMER"},
            ),
        ]
        direct = []
        for label, service, path, params in sources:
            s, _ = await timed(session, base[service] + path, headers, args.requests // 2, params)
            direct.append((label, s))
    top = body["widgets"]["topCustomers"]["data"]["currencies"]
    print(
        f"\nGET /api/v1/dashboard: {args.customers:,} customers, {args.opportunities:,} opportunities, "
        f"{args.activities:,} activities; {args.requests} sequential requests"
    )
    print(f"{'':44}{'p50 ms':>9}{'p99 ms':>9}")
    print(
        f"{'dashboard through the gateway':44}{percentile(samples, 50):>9.1f}{percentile(samples, 99):>9.1f}"
    )
    for label, s in direct:
        print(f"{'  ' + label:44}{percentile(s, 50):>9.1f}{percentile(s, 99):>9.1f}")
    print(f"dashboards/s at concurrency {args.concurrency}: {per_second:.1f}")
    print(f"widgets: {statuses}; topCustomers currencies: {[g['currency'] for g in top]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=200_000)
    p.add_argument("--opportunities", type=int, default=1_000_000)
    p.add_argument("--activities", type=int, default=2_000_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--database-url", default=os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG))
    p.add_argument("--amqp-url", default=os.environ.get("CRM_AMQP_URL", DEFAULT_AMQP))
    p.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = p.parse_args()
    args.password = "bench-" + uuid.uuid4().hex
    with sales_stack(args, prefix="dashbench", log=log, load=lambda url: load(url, args)) as urls:
        asyncio.run(measure(args, urls))


if __name__ == "__main__":
    main()
