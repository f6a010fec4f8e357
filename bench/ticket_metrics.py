"""Ticket metrics latency on Postgres at 500,000 tickets: the kept aggregates (issue 14) beside the scan.

    .venv/bin/python bench/ticket_metrics.py [--tickets 500000] [--requests 100] [--scan-requests 10]

On a fresh database (dropped afterwards unless --keep): the ticket schema by its migrations (so the
aggregate triggers are in place), `--tickets` tickets built in Postgres with one INSERT ... SELECT
generate_series (bench/ticket_bench.py's load: the statement-level triggers fold the whole load into
one grouped upsert), then ticket-svc as its own process (in-process bus). Each shape is requested
`--requests` times one at a time after 3 unmeasured ones, and p50/p99 printed:

- served by the aggregates (a caller whose ticket read scope is `all`, here a support agent): all
  tickets; grouped by team; one team;
- served by the scan (for comparison, and what a scoped caller or a period filter costs): all
  tickets with a `from` before every ticket (the same figures, by the scan), and grouped by month.

The kept figures are checked against the scan's (same instant, in-process) before measuring.
"""

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime

import aiohttp
from _support import (
    DEFAULT_PG,
    HOST,
    crm_service,
    free_port,
    latency_stats,
    logger,
    migrate,
    scratch_database,
    scratch_dir,
    service_env,
    signing_keys,
    token,
)
from ticket_bench import SCHEMA, load

log = logger("ticket-metrics")

EPOCH = "2000-01-01T00:00:00Z"  # before every ticket: the same tickets, but the scan path


async def timed(http: aiohttp.ClientSession, url: str, headers: dict, params: dict, n: int) -> tuple:
    out, body = [], None
    for i in range(3 + n):
        t0 = time.perf_counter()
        async with http.get(url, params=params, headers=headers) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"{params}: {r.status} {str(body)[:300]}")
        if i >= 3:
            out.append(time.perf_counter() - t0)
    return out, body


async def kept_equals_scan(url: str) -> bool:
    """The kept figures and the scan's for one instant, in-process (two requests would see different
    instants: an open ticket's due time can pass between them)."""
    from crm_common.db import Database
    from ticket_svc.service import metrics

    db = Database(url.replace("postgresql://", "postgresql+asyncpg://", 1), schema=SCHEMA)
    try:
        async with db.transaction() as session:
            now = datetime.now(UTC)
            for group_by in (None, "team"):
                kept = await metrics.ticket_metrics(session, now=now, group_by=group_by, kept=True)
                scanned = await metrics.ticket_metrics(session, now=now, group_by=group_by, kept=False)
                if kept.model_dump() != scanned.model_dump():
                    return False
        return True
    finally:
        await db.engine.dispose()


async def run(args) -> None:
    db_name = f"crm_tktmetrics_{int(time.time())}"
    async with scratch_database(args.database_url, db_name, keep=args.keep, log=log) as url:
        with scratch_dir("tktmetrics-", keep=args.keep, log=log) as work:
            log(f"database {db_name}: migrating")
            await migrate(url, SCHEMA)
            log(f"loading {args.tickets:,} tickets")
            loaded = await load(url, argparse.Namespace(tickets=args.tickets, customers=args.customers))
            log(f"loaded: {loaded}")
            private, public = signing_keys()
            env = service_env(SCHEMA, database_url=url, public_key=public, data_dir=work)
            headers = {"Authorization": f"Bearer {token(private, 'support_agent')}"}
            port = free_port()
            metrics_url = f"http://{HOST}:{port}/api/v1/tickets/metrics"
            with crm_service(SCHEMA, port, env=env, log_file=work / "ticket.log"):
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
                    _, kept = await timed(http, metrics_url, headers, {"groupBy": "team"}, 0)
                    same = await kept_equals_scan(url)
                    log(f"kept figures equal the scan's: {same}")
                    team = kept["groups"][0]["key"]
                    # The floor of any request on this machine at this moment: the readiness probe.
                    floor, _ = await timed(http, f"http://{HOST}:{port}/readyz", {}, {}, args.requests)
                    stats = latency_stats(floor)
                    rows = [("floor: GET /readyz (no query)", stats, 0)]
                    log(f"floor: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms")
                    shapes = {
                        "kept: all tickets": {},
                        "kept: by team": {"groupBy": "team"},
                        "kept: one team": {"teamId": team},
                        "scan: all tickets (from=2000-01-01)": {"from": EPOCH},
                        "scan: by month": {"groupBy": "month"},
                    }
                    for label, params in shapes.items():
                        n = args.scan_requests if label.startswith("scan") else args.requests
                        times, body = await timed(http, metrics_url, headers, params, n)
                        stats = latency_stats(times)
                        rows.append((label, stats, body["overall"]["total"]))
                        log(f"{label}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms")
    print(f"\nticket metrics, {loaded['rows']:,} tickets, Postgres, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"kept figures equal the scan's: {same}")
    print(f"{'shape':<40}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'tickets':>10}")
    for label, s, total in rows:
        print(f"{label:<40}{s['n']:>5}{s['p50_ms']:>9}{s['p99_ms']:>9}{s['max_ms']:>9}{total:>10,}")
    if not same:
        sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=500_000)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--requests", type=int, default=100, help="measured requests per kept shape")
    p.add_argument("--scan-requests", type=int, default=10, help="measured requests per scan shape")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--keep", action="store_true", help="keep the database")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
