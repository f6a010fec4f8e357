"""Server time of the web console's pages (/app) on a filled database, distributed mode on Postgres.

In one invocation:
1. creates a fresh database `crm_consolebench_<hex>` and migrates every schema (`crm migrate all`);
2. fills it with the service benchmarks' own loaders: customer_bench.seed (`--customers`) and
   pipeline_bench.seed (`--opportunities`, open over four stages, won and lost, three currencies);
3. starts the gateway, customer-, pipeline- and activity-svc as their own processes (`crm serve`),
   with RabbitMQ under a throw-away namespace;
4. signs in through the console's form (cookie session) and times, one request at a time after a
   warm-up, `--requests` GETs of each page: the customer list (default sort, a later page sorted by
   name, a search), its htmx table fragment, and the pipeline kanban, then the view-data API calls
   beneath the list and the kanban (for attribution); every answer must be 200;
5. prints p50/p99 per page, then drops the database (unless `--keep`) and the broker objects.

    .venv/bin/python bench/console_bench.py                  # 10k customers, 10k opportunities
    .venv/bin/python bench/console_bench.py --customers 50000 --opportunities 100000
"""

import argparse
import asyncio
import os
import re
import time
import uuid

import aiohttp
from _support import DEFAULT_AMQP, DEFAULT_PG, logger, percentile, sales_stack, seed_sales

log = logger("console-bench")


async def sign_in(session: aiohttp.ClientSession, gateway: str, password: str) -> None:
    async with session.get(f"{gateway}/app/login") as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text()).group(1)
    form = {"csrf": csrf, "username": "admin@example.com", "password": password, "next": "/app"}
    async with session.post(f"{gateway}/app/login", data=form, allow_redirects=False) as r:
        if r.status != 303:
            raise RuntimeError(f"sign-in: HTTP {r.status} {await r.text()}")


async def timed(session, url: str, n: int, headers: dict | None = None) -> list[float]:
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        async with session.get(url, headers=headers, allow_redirects=False) as r:
            body = await r.text()
            if r.status != 200:
                raise RuntimeError(f"GET {url}: {r.status} {body[:500]}")
        samples.append((time.perf_counter() - t) * 1000)
    return samples


async def measure(args, gateway: str) -> None:
    # The session cookie is set for 127.0.0.1, which aiohttp's default jar refuses (an IP address).
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await sign_in(session, gateway, args.password)
        pages = [
            ("customer list (default sort)", "/app/customers", None),
            ("customer list, page 7 by name", "/app/customers?sort=fullName&page=7", None),
            ("customer list, search", "/app/customers?q=smith", None),
            (
                "customer table fragment (htmx)",
                "/app/customers?status=CUSTOMER",
                {"HX-Request": "true", "HX-Target": "customer-table"},
            ),
            ("pipeline kanban (20 cards a column)", "/app/pipeline", None),
            ("pipeline kanban, 50 cards a column", "/app/pipeline?cards=50", None),
        ]
        # The API calls under the two heaviest pages, for attribution: what rendering adds on top.
        async with session.post(
            f"{gateway}/api/v1/auth/token", data={"username": "admin@example.com", "password": args.password}
        ) as r:
            bearer = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
        pages += [
            ("  API: customer-list view data", "/api/v1/views/customer-list/data", bearer),
            (
                "  API: sales-pipeline data, 20 cards",
                "/api/v1/views/sales-pipeline/data?cardsPerColumn=20",
                bearer,
            ),
        ]
        results = []
        for label, path, headers in pages:
            await timed(session, gateway + path, 10, headers)  # warm connections, pools and plans
            results.append((label, await timed(session, gateway + path, args.requests, headers)))
    print(
        f"\nConsole pages: {args.customers:,} customers, {args.opportunities:,} opportunities; "
        f"{args.requests} sequential requests each"
    )
    print(f"{'':38}{'p50 ms':>9}{'p99 ms':>9}")
    for label, samples in results:
        print(f"{label:38}{percentile(samples, 50):>9.1f}{percentile(samples, 99):>9.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--opportunities", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--database-url", default=os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG))
    p.add_argument("--amqp-url", default=os.environ.get("CRM_AMQP_URL", DEFAULT_AMQP))
    p.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = p.parse_args()
    args.password = "bench-" + uuid.uuid4().hex

    async def load(db_url: str) -> dict:
        return await seed_sales(db_url, customers=args.customers, opportunities=args.opportunities)

    with sales_stack(args, prefix="consolebench", log=log, load=load) as urls:
        asyncio.run(measure(args, urls["gateway"]))


if __name__ == "__main__":
    main()
