"""Benchmark of the gateway's cost: GET one customer through the gateway vs straight to customer-svc.

In one invocation:
1. starts the gateway and customer-svc as two uvicorn processes (`crm serve`, distributed mode) on
   SQLite files in a temporary data folder, with RabbitMQ under a unique events namespace so the
   admin's `user.created` reaches customer-svc's directory;
2. creates `--customers` customers through the gateway;
3. measures, with one aiohttp client, p50/p99 latency of sequential GET /api/v1/customers/{id}
   (random ids) and the throughput at `--concurrency` for `--seconds`, direct and through the
   gateway, interleaved in rounds so both see the same machine load;
4. prints a table (gateway overhead at p50, gateway/direct throughput) and removes its processes,
   folder and broker objects.

    .venv/bin/python bench/gateway_bench.py
    .venv/bin/python bench/gateway_bench.py --requests 3000 --seconds 5 --concurrency 32

5. creates `--opportunities` opportunities (pipeline-svc and activity-svc run too) and measures
   p50/p99 of `--dashboards` sequential GET /api/v1/dashboard. Small data sets: the service
   benchmarks' large ones (1M opportunities...) are not loaded here.
"""

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

import aiohttp
from _support import (
    DEFAULT_AMQP,
    HOST,
    crm_env,
    crm_processes,
    delete_broker_objects,
    free_port,
    logger,
    login,
    percentile,
    scratch_dir,
    throughput,
)

log = logger("gateway-bench")


async def latency(session, base, headers, ids, n) -> list[float]:
    out = []
    for _ in range(n):
        url = f"{base}/api/v1/customers/{random.choice(ids)}"
        t = time.perf_counter()
        async with session.get(url, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - t) * 1000)
    return out


async def run(args, gateway: str, direct: str) -> None:
    connector = aiohttp.TCPConnector(limit=args.concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": f"Bearer {await login(session, gateway, args.password)}"}
        ids = []
        deadline = time.monotonic() + 30
        while len(ids) < args.customers:
            body = {
                "firstName": "Bench",
                "lastName": f"C{len(ids)}",
                "email": f"c{len(ids)}-{uuid.uuid4().hex[:6]}@ex.com",
            }
            async with session.post(f"{gateway}/api/v1/customers", json=body, headers=headers) as r:
                if r.status == 201:
                    ids.append((await r.json())["id"])
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create customers: {r.status} {await r.text()}")
                else:  # the directory has not learnt the admin yet
                    await asyncio.sleep(0.2)
        await latency(session, direct, headers, ids, 200)  # warm up both paths
        await latency(session, gateway, headers, ids, 200)
        lat = {"direct": [], "gateway": []}
        thr = {"direct": [], "gateway": []}
        for _ in range(args.rounds):
            for name, base in (("direct", direct), ("gateway", gateway)):
                lat[name] += await latency(session, base, headers, ids, args.requests // args.rounds)
                thr[name].append(
                    await throughput(
                        session,
                        lambda base=base: f"{base}/api/v1/customers/{random.choice(ids)}",
                        headers,
                        args.concurrency,
                        args.seconds / args.rounds,
                    )
                )
        # The dashboard: opportunities on the customers (pipeline-svc learns them from events first).
        made, deadline = 0, time.monotonic() + 30
        while made < args.opportunities:
            body = {
                "title": f"Deal {made}",
                "customerId": ids[made % len(ids)],
                "amount": f"{random.randint(100, 99999)}.00",
                "currency": random.choice(("USD", "USD", "EUR")),
            }
            async with session.post(f"{gateway}/api/v1/opportunities", json=body, headers=headers) as r:
                if r.status == 201:
                    made += 1
                elif time.monotonic() > deadline:
                    raise RuntimeError(f"cannot create opportunities: {r.status} {await r.text()}")
                else:
                    await asyncio.sleep(0.2)
        dash = []
        for _ in range(args.dashboards):
            t = time.perf_counter()
            async with session.get(f"{gateway}/api/v1/dashboard", headers=headers) as r:
                page = await r.json()
            dash.append((time.perf_counter() - t) * 1000)
        statuses = {k: v["status"] for k, v in page["widgets"].items()}
    print(
        f"\nGET /api/v1/customers/{{id}}: {args.customers} customers, {args.requests} sequential requests "
        f"per path, throughput at concurrency {args.concurrency} for {args.seconds}s per path"
    )
    print(f"{'path':<10}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>10}")
    for name in ("direct", "gateway"):
        print(
            f"{name:<10}{percentile(lat[name], 50):>10.2f}{percentile(lat[name], 99):>10.2f}"
            f"{statistics.mean(thr[name]):>10.0f}"
        )
    overhead = percentile(lat["gateway"], 50) - percentile(lat["direct"], 50)
    ratio = statistics.mean(thr["gateway"]) / statistics.mean(thr["direct"])
    print(
        f"gateway overhead at p50: {overhead:.2f} ms (target < 1.5 ms); "
        f"throughput kept: {ratio:.0%} (target >= 70%)"
    )
    print(
        f"\nGET /api/v1/dashboard ({args.customers} customers, {args.opportunities} opportunities, "
        f"{args.dashboards} sequential): p50 {percentile(dash, 50):.1f} ms, p99 {percentile(dash, 99):.1f} ms; "
        f"widgets {statuses}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=200)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--opportunities", type=int, default=300)
    p.add_argument("--dashboards", type=int, default=200)
    p.add_argument("--amqp-url", default=os.environ.get("CRM_AMQP_URL", DEFAULT_AMQP))
    args = p.parse_args()
    args.password = "bench-" + uuid.uuid4().hex
    namespace = f"bench-gateway-{uuid.uuid4().hex[:8]}."
    ports = {name: free_port() for name in ("gateway", "customer", "pipeline", "activity")}
    with scratch_dir("crm-gwbench-", keep=False, log=log) as data:
        env = crm_env(
            ports,
            data_dir=data,
            amqp_url=args.amqp_url,
            namespace=namespace,
            admin_password=args.password,
            # Counted (so its cost is in the figures) but never reached.
            CRM_GATEWAY_RATE_LIMIT_REQUESTS=str(10**9),
        )
        try:
            with crm_processes(ports, env, data):
                asyncio.run(
                    run(args, f"http://{HOST}:{ports['gateway']}", f"http://{HOST}:{ports['customer']}")
                )
        finally:
            asyncio.run(delete_broker_objects(args.amqp_url, namespace, log))


if __name__ == "__main__":
    main()
