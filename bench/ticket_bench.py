"""Benchmark of ticket-svc on Postgres: ticket create throughput, and metrics query latency on a
big table, each beside a bare baseline run in the same invocation.

    .venv/bin/python bench/ticket_bench.py [--tickets 500000] [--creates 2000] [--concurrency 16]

On a fresh database (dropped afterwards unless --keep):

1. load: the ticket schema by its migrations, then `--tickets` tickets built in Postgres with
   INSERT ... SELECT generate_series (secondary indexes dropped during the load and rebuilt from
   their own definitions), the customers they belong to, the user/team directory, one SLA policy
   (office hours in Europe/Berlin), VACUUM ANALYZE. Breaches of open tickets are marked as the
   escalation scheduler would have, so the service starts in a steady state;
2. ticket-svc starts as its own process (`crm serve ticket`, RabbitMQ on a fresh namespace unless
   --amqp-url is empty, scheduler on);
3. creates: `POST /api/v1/tickets` from `--concurrency` workers (random customer, team, assignee,
   priority) after a warm-up: creates/s, p50/p99; baseline: bench/baseline_app.py (FastAPI, one
   INSERT per request) on the same database, same load;
4. metrics: `GET /api/v1/tickets/metrics` one request at a time, in three shapes (all tickets; the
   last 30 days by team; by month): p50/p99; baseline: the bare full-table
   `SELECT status, priority, count(*) ... GROUP BY` with asyncpg.

Prints a table and writes bench/results/ticket-<UTC time>.json (unless --no-json).
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    HERE,
    HOST,
    cpu_sample,
    cpu_used,
    crm_service,
    delete_broker_objects,
    free_port,
    latency_stats,
    logger,
    md5_uuid,
    migrate,
    scratch_database,
    scratch_dir,
    server_process,
    service_env,
    signing_keys,
    token,
    write_results,
)

SCHEMA = "ticket"
POLICY_ID = uuid.UUID(int=1)
REVISION_ID = uuid.UUID(int=2)
TEAMS = 10
AGENTS = 50

log = logger("ticket-bench")


# --- load -------------------------------------------------------------------------------------------

TICKETS_SQL = """
INSERT INTO tickets (
    id, ticket_number, subject, description, customer_id, category, subcategory, type, priority,
    status, resolution, assigned_to_id, team_id, first_response_at, resolved_at, closed_at, due_date,
    response_time, resolution_time, escalation_level, related_tickets, tags, satisfaction_rating,
    satisfaction_comment, satisfaction_rated_at, custom_fields, sla_policy_id, sla_revision_id,
    first_response_due_at, resolution_due_at, sla_stopped_at, sla_stopped_seconds,
    response_breached_at, resolution_breached_at, created_by_id, created_at, updated_at, version)
SELECT
    md5('ticket-' || g)::uuid,
    'TKT-' || (2025 - g / 1000000) || '-' || lpad((g % 1000000)::text, 6, '0'),
    'Ticket ' || g || ' about ' || (ARRAY['printer','login','invoice','upgrade'])[1 + g % 4],
    'Description of ticket ' || g,
    md5('customer-' || (g % {customers}))::uuid,
    (ARRAY['Hardware','Software','Billing','Account'])[1 + g % 4], NULL,
    (ARRAY['QUESTION','PROBLEM','REQUEST','INCIDENT'])[1 + g % 4],
    (ARRAY['LOW','NORMAL','NORMAL','HIGH','URGENT'])[1 + (g / 7) % 5],
    s.st,
    CASE WHEN s.done THEN 'Resolved ' || g END,
    md5('agent-' || (g % {agents}))::uuid,
    CASE WHEN g % 11 = 10 THEN NULL ELSE md5('team-' || (g % 11))::uuid END,
    CASE WHEN s.st <> 'NEW' THEN t.ts + s.rt * interval '1 minute' END,
    CASE WHEN s.done THEN t.ts + s.rst * interval '1 minute' END,
    CASE WHEN s.st = 'CLOSED' THEN t.ts + (s.rst + 1440) * interval '1 minute' END,
    NULL,
    CASE WHEN s.st <> 'NEW' THEN s.rt END,
    CASE WHEN s.done THEN s.rst END,
    CASE WHEN s.st = 'ESCALATED' THEN 1 ELSE 0 END,
    '[]'::jsonb,
    CASE WHEN g % 5 = 0 THEN '["vip"]'::jsonb ELSE '[]'::jsonb END,
    CASE WHEN s.done AND g % 3 = 0 THEN 1 + (g / 3) % 5 END,
    NULL,
    CASE WHEN s.done AND g % 3 = 0 THEN t.ts + (s.rst + 60) * interval '1 minute' END,
    '{{}}'::jsonb,
    '{policy}'::uuid, '{revision}'::uuid,
    t.ts + interval '240 minutes', t.ts + interval '2400 minutes',
    CASE WHEN s.done THEN t.ts + s.rst * interval '1 minute'
         WHEN s.st = 'PENDING' THEN t.ts + s.rt * interval '1 minute' END,
    0,
    -- Breaches as the scheduler (or a late response/resolution) would have recorded them.
    CASE WHEN s.st <> 'NEW' AND s.rt > 240 THEN t.ts + s.rt * interval '1 minute'
         WHEN s.st = 'NEW' AND t.ts + interval '240 minutes' < now() THEN t.ts + interval '240 minutes' END,
    CASE WHEN s.done AND s.rst > 2400 THEN t.ts + s.rst * interval '1 minute'
         WHEN NOT s.done AND t.ts + interval '2400 minutes' < now() THEN t.ts + interval '2400 minutes' END,
    md5('agent-' || (g % {agents}))::uuid,
    t.ts, t.ts, 1
FROM generate_series(1, {count}) AS g,
     LATERAL (SELECT CASE
                WHEN g % 100 < 2 THEN 'NEW' WHEN g % 100 < 7 THEN 'OPEN' WHEN g % 100 < 9 THEN 'PENDING'
                WHEN g % 100 < 10 THEN 'ESCALATED' WHEN g % 100 < 30 THEN 'RESOLVED' ELSE 'CLOSED' END AS st,
              1 + (g * 31) % 600 AS rt,
              1 + (g * 31) % 600 + (g * 17) % 5000 AS rst) AS s0,
     LATERAL (SELECT s0.st, s0.rt, s0.rst, s0.st IN ('RESOLVED', 'CLOSED') AS done) AS s,
     -- Open tickets are recent (last 5 days), the others spread over a year.
     LATERAL (SELECT now() - CASE WHEN s.done THEN (g::bigint * 7919) % 31536000
                                  ELSE (g::bigint * 7919) % 432000 END * interval '1 second' AS ts) AS t
"""

POLICY = {
    "name": "Standard",
    "timeZone": "Europe/Berlin",
    "businessHours": [
        {"day": d, "start": "09:00", "end": "17:00"} for d in ("MON", "TUE", "WED", "THU", "FRI")
    ],
    "holidays": ["2026-12-24", "2026-12-25", "2026-12-31"],
    "pauseStatuses": ["PENDING"],
    "targets": [
        {"priority": "LOW", "firstResponseMinutes": 480, "resolutionMinutes": 4800},
        {"priority": "NORMAL", "firstResponseMinutes": 240, "resolutionMinutes": 2400},
        {"priority": "HIGH", "firstResponseMinutes": 60, "resolutionMinutes": 960},
        {"priority": "URGENT", "firstResponseMinutes": 30, "resolutionMinutes": 240},
    ],
}


async def load(url: str, args) -> dict:
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    t0 = time.perf_counter()
    try:
        await conn.execute(
            "INSERT INTO customer_refs (id, customer_number, full_name, version, updated_at) "
            "SELECT md5('customer-' || c)::uuid, 'CUST-2025-' || lpad(c::text, 6, '0'), 'Customer ' || c, 1, now() "
            "FROM generate_series(0, $1 - 1) c",
            args.customers,
        )
        await conn.execute(
            "INSERT INTO directory_teams (id, name, type, member_ids, is_active, version, updated_at) "
            "SELECT md5('team-' || k)::uuid, 'Team ' || k, 'SUPPORT', '[]'::jsonb, true, 1, now() "
            "FROM generate_series(0, $1 - 1) k",
            TEAMS,
        )
        await conn.execute(
            "INSERT INTO directory_users (id, email, full_name, roles, is_active, time_zone, version, updated_at) "
            "SELECT md5('agent-' || k)::uuid, 'agent' || k || '@example.com', 'Agent ' || k, "
            "'[\"support_agent\"]'::jsonb, true, 'UTC', 1, now() FROM generate_series(0, $1 - 1) k",
            AGENTS,
        )
        snapshot = {"policyId": str(POLICY_ID), **POLICY}
        await conn.execute(
            "INSERT INTO sla_revisions (id, policy_id, policy_version, snapshot, created_at) "
            "VALUES ($1, $2, 1, $3::jsonb, now())",
            REVISION_ID,
            POLICY_ID,
            json.dumps(snapshot),
        )
        await conn.execute(
            "INSERT INTO sla_policies (id, name, is_active, targets, time_zone, business_hours, holidays, "
            "pause_statuses, revision_id, created_at, updated_at, version) "
            "VALUES ($1, $2, true, $3::jsonb, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, now(), now(), 1)",
            POLICY_ID,
            POLICY["name"],
            json.dumps(POLICY["targets"]),
            POLICY["timeZone"],
            json.dumps(POLICY["businessHours"]),
            json.dumps(POLICY["holidays"]),
            json.dumps(POLICY["pauseStatuses"]),
            REVISION_ID,
        )
        indexes = await conn.fetch(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = $1 AND i.tablename = 'tickets' "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            SCHEMA,
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        t1 = time.perf_counter()
        await conn.execute(
            TICKETS_SQL.format(
                count=args.tickets,
                customers=args.customers,
                agents=AGENTS,
                policy=POLICY_ID,
                revision=REVISION_ID,
            )
        )
        t2 = time.perf_counter()
        for row in indexes:
            await conn.execute(row["indexdef"])
        t3 = time.perf_counter()
        await conn.execute("VACUUM ANALYZE tickets")
        await conn.execute("VACUUM ANALYZE customer_refs")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('tickets'))")
        count = await conn.fetchval("SELECT count(*) FROM tickets")
    finally:
        await conn.close()
    return {
        "rows": count,
        "table_size": size,
        "insert_s": round(t2 - t1, 1),
        "index_s": round(t3 - t2, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }


# --- load generators -------------------------------------------------------------------------------


async def post_load(url: str, bodies: list[dict], headers: dict, concurrency: int, warmup: int) -> dict:
    """POST every body, `concurrency` in flight; the first `warmup` are sent (and finished) before
    the measured phase starts and are not counted."""
    latencies: list[float] = []
    errors: list[str] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def phase(indexes, measure: bool) -> None:
            async def worker() -> None:
                for i in indexes:
                    t0 = time.perf_counter()
                    async with http.post(url, json=bodies[i], headers=headers) as r:
                        text = await r.text()
                    if r.status != 201:
                        errors.append(f"{r.status} {text[:200]}")
                    elif measure:
                        latencies.append(time.perf_counter() - t0)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await phase(iter(range(warmup)), measure=False)
        t0 = time.perf_counter()
        await phase(iter(range(warmup, len(bodies))), measure=True)
        wall = time.perf_counter() - t0
    return {
        "ok": len(latencies),
        "total": len(bodies) - warmup,
        "errors": len(errors),
        "error_samples": errors[:3],
        "wall_s": round(wall, 2),
        "per_s": round(len(latencies) / wall, 1) if wall else None,
        **latency_stats(latencies),
    }


async def timed_gets(url: str, headers: dict, params: dict, n: int, warmup: int) -> list[float]:
    out = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            async with http.get(url, params=params, headers=headers) as r:
                body = await r.json()
            elapsed = time.perf_counter() - t0
            if r.status != 200:
                raise RuntimeError(f"metrics {params}: {r.status} {str(body)[:300]}")
            if i >= warmup:
                out.append(elapsed)
    return out, body


async def sql_counts(url: str, n: int, warmup: int) -> list[float]:
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    out = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            await conn.fetch("SELECT status, priority, count(*) FROM tickets GROUP BY status, priority")
            if i >= warmup:
                out.append(time.perf_counter() - t0)
    finally:
        await conn.close()
    return out


def create_bodies(n: int, customers: int, seed: int = 5) -> list[dict]:
    rnd = random.Random(seed)
    bodies = []
    for i in range(n):
        bodies.append(
            {
                "subject": f"Bench ticket {i}",
                "description": "Created by the ticket benchmark.",
                "type": rnd.choice(["QUESTION", "PROBLEM", "REQUEST", "INCIDENT"]),
                "priority": rnd.choice(["LOW", "NORMAL", "HIGH", "URGENT"]),
                "customerId": str(md5_uuid(f"customer-{rnd.randrange(customers)}")),
                "teamId": str(md5_uuid(f"team-{rnd.randrange(TEAMS)}")),
                "assignedToId": str(md5_uuid(f"agent-{rnd.randrange(AGENTS)}")),
                "tags": ["bench"],
            }
        )
    return bodies


# --- the run -----------------------------------------------------------------------------------------


async def run(args) -> dict:
    tag = secrets.token_hex(4)
    db_name = f"crm_tktbench_{tag}"
    namespace = f"tktbench-{tag}."
    result: dict = {"args": vars(args), "database": db_name, "started": datetime.now(UTC).isoformat()}
    async with scratch_database(args.database_url, db_name, keep=args.keep, log=log) as url:
        with scratch_dir("tktbench-", keep=args.keep, log=log) as work:
            try:
                await measure(args, url, work, tag, namespace, result)
            finally:
                if args.amqp_url:
                    await delete_broker_objects(args.amqp_url, namespace, log)
    return result


async def measure(args, url: str, work: Path, tag: str, namespace: str, result: dict) -> None:
    log(f"database {result['database']}: migrating")
    await migrate(url, SCHEMA)
    log(f"loading {args.tickets:,} tickets over {args.customers:,} customers")
    result["load"] = await load(url, args)
    log(f"loaded: {result['load']}")

    private, public = signing_keys()
    env = service_env(SCHEMA, database_url=url, public_key=public, data_dir=work)
    if args.amqp_url:
        env.update(CRM_AMQP_URL=args.amqp_url, CRM_EVENTS_NAMESPACE=namespace)
    headers = {"Authorization": f"Bearer {token(private, 'support_agent')}"}
    bodies = create_bodies(args.warmup + args.creates, args.customers)

    port = free_port()
    with crm_service(SCHEMA, port, env=env, log_file=work / "ticket.log") as proc:
        log(f"creates: {args.creates:,} (+{args.warmup} warm-up) at concurrency {args.concurrency}")
        before, t0 = cpu_sample(proc.pid), time.perf_counter()
        creates = await post_load(
            f"http://{HOST}:{port}/api/v1/tickets", bodies, headers, args.concurrency, args.warmup
        )
        creates["cpu"] = cpu_used(before, cpu_sample(proc.pid), time.perf_counter() - t0)
        result["creates"] = {"service": creates}
        log(f"creates: {creates['per_s']}/s, p50 {creates['p50_ms']} ms, p99 {creates['p99_ms']} ms")

        shapes = {
            "all tickets": {},
            "last 30 days by team": {
                "from": (datetime.now(UTC) - timedelta(days=30)).isoformat().replace("+00:00", "Z"),
                "groupBy": "team",
            },
            "all by month": {"groupBy": "month"},
        }
        result["metrics"] = {}
        for label, params in shapes.items():
            log(f"metrics ({label}): {args.metrics_requests} requests, one at a time")
            before, t0 = cpu_sample(proc.pid), time.perf_counter()
            times, body = await timed_gets(
                f"http://{HOST}:{port}/api/v1/tickets/metrics", headers, params, args.metrics_requests, 2
            )
            stats = latency_stats(times)
            stats["cpu"] = cpu_used(before, cpu_sample(proc.pid), time.perf_counter() - t0)
            stats["total"] = body["overall"]["total"]
            stats["groups"] = len(body["groups"])
            result["metrics"][label] = stats
            log(f"  p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms over {stats['total']:,} tickets")

    if not args.no_baseline:
        log("baseline: bare SQL counts")
        result["metrics"]["bare SQL: count by status, priority"] = latency_stats(
            await sql_counts(url, args.metrics_requests, 2)
        )
        port = free_port()
        argv = [sys.executable, str(HERE / "baseline_app.py"), "--database-url", url, "--port", str(port)]
        with server_process(
            argv,
            env=env,
            log_file=work / "baseline.log",
            ready_url=f"http://{HOST}:{port}/readyz",
            name="baseline",
        ) as proc:
            log("baseline creates: one INSERT per request")
            base_bodies = [
                {"firstName": "Bench", "lastName": str(i), "email": f"b{i}-{tag}@example.com"}
                for i in range(args.warmup + args.creates)
            ]
            before, t0 = cpu_sample(proc.pid), time.perf_counter()
            base = await post_load(
                f"http://{HOST}:{port}/customers", base_bodies, {}, args.concurrency, args.warmup
            )
            base["cpu"] = cpu_used(before, cpu_sample(proc.pid), time.perf_counter() - t0)
            result["creates"]["baseline"] = base


def report(result: dict) -> None:
    load = result["load"]
    print(
        f"\ntickets: {load['rows']:,} rows ({load['table_size']} with indexes), loaded in {load['total_s']}s "
        f"(insert {load['insert_s']}s, indexes {load['index_s']}s)"
    )
    print(f"\n{'creates':<34}{'ok/total':>12}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for key, label in (
        ("service", "ticket-svc POST /tickets"),
        ("baseline", "baseline: one INSERT (FastAPI)"),
    ):
        s = result["creates"].get(key)
        if s:
            print(
                f"{label:<34}{str(s['ok']) + '/' + str(s['total']):>12}{s['per_s']:>9}{s['p50_ms']:>9}"
                f"{s['p99_ms']:>9}{s['max_ms']:>9}"
            )
    if "baseline" in result["creates"]:
        ratio = result["creates"]["service"]["per_s"] / result["creates"]["baseline"]["per_s"]
        print(f"  ratio ticket-svc / baseline: {ratio:.2f}")
    for key in ("service", "baseline"):
        s = result["creates"].get(key)
        if s and s.get("cpu"):
            print(f"  cpu ({key}): {s['cpu']}")
        if s and s["errors"]:
            print(f"  errors ({key}): {s['errors']} e.g. {s['error_samples']}")
    print(f"\n{'metrics query':<40}{'n':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'tickets':>10}")
    for label, s in result["metrics"].items():
        print(
            f"{label:<40}{s['n']:>5}{s['p50_ms']:>9}{s['p99_ms']:>9}{s['max_ms']:>9}{s.get('total', ''):>10}"
        )
    cpu = result["metrics"].get("all tickets", {}).get("cpu")
    if cpu:
        print(f"  cpu during 'all tickets': {cpu}")
    print("  (machine_cores_busy well above server_cores + ~1 means other jobs shared the machine)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tickets", type=int, default=500_000)
    p.add_argument("--customers", type=int, default=20_000)
    p.add_argument("--creates", type=int, default=2000, help="measured creates")
    p.add_argument("--warmup", type=int, default=200, help="unmeasured creates first")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--metrics-requests", type=int, default=30, help="measured requests per metrics shape")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--amqp-url", default=DEFAULT_AMQP, help="empty: the in-process bus")
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    report(result)
    if not args.no_json:
        print(f"\nwrote {write_results(result, 'ticket-')}")
    bad = result["creates"]["service"]["errors"] or result["creates"].get("baseline", {}).get("errors")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
