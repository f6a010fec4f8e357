"""Benchmark of pipeline-svc on Postgres with a large pipeline (default 1,000,000 opportunities).

What it does, in one invocation:

1. creates a fresh database `crm_pipebench_<hex>` on the Postgres server, runs pipeline-svc's migrations
   (schema `pipeline`, the default pipeline of six stages) and fills it in SQL: `--owners` users in the
   directory, `--teams` teams, `--customers` known customers and `--opportunities` opportunities
   (40% OPEN spread over the four open stages, 35% WON, 25% LOST; 70% USD, 20% EUR, 10% GBP; expected
   close dates within +-18 months of today), then ANALYZE;
2. starts pipeline-svc as its own process (`crm serve pipeline`, uvicorn) on that database, with
   RabbitMQ under a unique events namespace when it answers (else the in-process bus);
3. measures, with an aiohttp client at `--concurrency`, p50/p99 of GET /opportunities/forecast and
   GET /opportunities/board with the filters below, and the throughput of POST /opportunities/{id}/win
   (each win also writes its DRAFT invoice and three outbox rows) at `--win-concurrency`;
4. runs the same work as a baseline side by side: the same SQL straight through asyncpg (no HTTP, no
   framework, no ORM) for the reads, and for wins a hand-written transaction doing the same writes;
5. prints a table, writes bench/results/pipeline-<UTC time>.json (unless --no-json), drops the database
   (unless --keep-db) and deletes the broker objects of its namespace.

    .venv/bin/python bench/pipeline_bench.py                         # 1M opportunities
    .venv/bin/python bench/pipeline_bench.py --opportunities 100000  # a quicker one

See bench/README_pipeline.md.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta

import aiohttp
import asyncpg
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    HOST,
    create_database,
    crm_service,
    delete_broker_objects,
    drop_database,
    free_port,
    logger,
    migrate,
    ms,
    percentile,
    run_async,
    scratch_dir,
    service_env,
    signing_keys,
    token,
    with_database,
    write_results,
)

SCHEMA = "pipeline"

log = logger("pipeline-bench")


# --- database -------------------------------------------------------------------------------------


SEED_CHUNK = """
INSERT INTO opportunities (
    id, title, description, customer_id, amount, amount_manual, currency, probability,
    expected_close_date, actual_close_date, stage_id, status, lost_reason, owner_id, team_id,
    competitors, custom_fields, created_by_id, created_at, updated_at, version)
SELECT
    gen_random_uuid(),
    'Deal ' || g,
    NULL,
    ($3::uuid[])[1 + floor(r3 * cardinality($3::uuid[]))::int],
    round((100 + r2 * 99900)::numeric, 2),
    true,
    CASE WHEN g % 10 < 7 THEN 'USD' WHEN g % 10 < 9 THEN 'EUR' ELSE 'GBP' END,
    CASE WHEN r < 0.40 THEN ($5::int[])[1 + g % 4] WHEN r < 0.75 THEN 100 ELSE 0 END,
    current_date + (floor(r4 * 1081)::int - 540),
    CASE WHEN r < 0.40 THEN NULL ELSE current_date + (floor(r4 * 1081)::int - 540) END,
    CASE WHEN r < 0.40 THEN ($4::uuid[])[1 + g % 4] WHEN r < 0.75 THEN $6::uuid ELSE $7::uuid END,
    CASE WHEN r < 0.40 THEN 'OPEN' WHEN r < 0.75 THEN 'WON' ELSE 'LOST' END,
    CASE WHEN r >= 0.75 THEN 'Price' END,
    ($1::uuid[])[1 + g % cardinality($1::uuid[])],
    ($2::uuid[])[1 + (g % cardinality($1::uuid[])) % cardinality($2::uuid[])],
    '[]'::jsonb,
    '{}'::jsonb,
    NULL,
    now() - make_interval(days => floor(r5 * 700)::int),
    now(),
    1
FROM (
    SELECT g, random() AS r, random() AS r2, random() AS r3, random() AS r4, random() AS r5
    FROM generate_series($8::int, $9::int) AS g
) AS s
"""


@dataclass
class Seeded:
    owners: list[uuid.UUID]
    teams: list[uuid.UUID]
    customers: int
    opportunities: int
    seconds: float


async def seed(database_url: str, args: argparse.Namespace) -> Seeded:
    started = time.perf_counter()
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute("SELECT setseed(0.42)")
        owners = [uuid.uuid4() for _ in range(args.owners)]
        teams = [uuid.uuid4() for _ in range(args.teams)]
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO directory_users (id, email, full_name, roles, is_active, time_zone, version, updated_at)"
            " VALUES ($1, $2, $3, '[]'::jsonb, true, 'UTC', 1, $4)",
            [(o, f"owner{i}@bench.example", f"Owner {i}", now) for i, o in enumerate(owners)],
        )
        await conn.executemany(
            "INSERT INTO directory_teams (id, name, type, manager_id, member_ids, is_active, version, updated_at)"
            " VALUES ($1, $2, 'SALES', NULL, '[]'::jsonb, true, 1, $3)",
            [(t, f"Team {i}", now) for i, t in enumerate(teams)],
        )
        customers = [uuid.uuid4() for _ in range(args.customers)]
        await conn.copy_records_to_table(
            "customer_refs",  # the shared read model of customers (crm_common.customer_refs)
            records=[
                (c, f"CUST-2026-{i:06d}", f"Customer {i}", "CUSTOMER", None, 1, now)
                for i, c in enumerate(customers)
            ],
            columns=[
                "id",
                "customer_number",
                "full_name",
                "status",
                "merged_into_id",
                "version",
                "updated_at",
            ],
        )
        stages = {
            r["name"]: r for r in await conn.fetch("SELECT id, name, probability FROM opportunity_stages")
        }
        open_names = ["Prospecting", "Qualification", "Proposal", "Negotiation"]
        open_ids = [stages[n]["id"] for n in open_names]
        open_probabilities = [stages[n]["probability"] for n in open_names]
        chunk = args.seed_chunk
        done = 0
        while done < args.opportunities:
            upto = min(args.opportunities, done + chunk)
            await conn.execute(
                SEED_CHUNK,
                owners,
                teams,
                customers,
                open_ids,
                open_probabilities,
                stages["Closed Won"]["id"],
                stages["Closed Lost"]["id"],
                done + 1,
                upto,
            )
            done = upto
            log(
                f"seeded {done:,} / {args.opportunities:,} opportunities ({time.perf_counter() - started:.0f}s)"
            )
        # Steady state: the visibility map set (as autovacuum keeps it), so index-only scans work.
        log("VACUUM ANALYZE")
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return Seeded(owners, teams, len(customers), args.opportunities, time.perf_counter() - started)


# --- broker -----------------------------------------------------------------------------------------


def amqp_reachable(url: str) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or HOST, parsed.port or 5672), timeout=1):
            return True
    except OSError:
        return False


# --- load -----------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    target: str
    requests: int
    errors: int
    error_samples: list[str]
    wall_s: float
    per_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    extra: dict = field(default_factory=dict)


async def drive(name: str, target: str, jobs: list, run, concurrency: int) -> Result:
    """Run `run(job)` for every job, `concurrency` at a time; latency per job."""
    latencies: list[float] = []
    errors: list[str] = []
    queue = list(reversed(jobs))

    async def worker():
        while queue:
            job = queue.pop()
            start = time.perf_counter()
            try:
                await run(job)
                latencies.append(time.perf_counter() - start)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:300])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return Result(
        scenario=name,
        target=target,
        requests=len(jobs),
        errors=len(errors),
        error_samples=errors[:3],
        wall_s=round(wall, 3),
        per_s=round(len(latencies) / wall, 1) if wall else 0.0,
        p50_ms=ms(percentile(latencies, 50)),
        p99_ms=ms(percentile(latencies, 99)),
        max_ms=ms(max(latencies) if latencies else None),
    )


FORECAST_SQL = """
SELECT o.currency, o.stage_id, s.name, s.sort_order, count(*) AS n, sum(o.amount) AS total,
       sum(o.amount * o.probability) AS weighted100,
       sum(CASE WHEN o.probability >= 75 THEN o.amount ELSE 0 END) AS best,
       sum(CASE WHEN o.probability >= 25 AND o.probability < 75 THEN o.amount ELSE 0 END) AS likely,
       sum(CASE WHEN o.probability < 25 THEN o.amount ELSE 0 END) AS worst
FROM opportunities o JOIN opportunity_stages s ON s.id = o.stage_id
WHERE o.status = 'OPEN' AND o.expected_close_date >= $1 AND o.expected_close_date <= $2 {filters}
GROUP BY o.currency, o.stage_id, s.name, s.sort_order
"""

BOARD_SUMMARY_SQL = """
SELECT stage_id, currency, count(*) AS n, sum(amount) AS total
FROM opportunities WHERE stage_id = ANY($1::uuid[]) {filters}
GROUP BY stage_id, currency
"""

BOARD_CARDS_SQL = """
SELECT o.id, o.stage_id, o.title, o.customer_id, o.amount, o.currency, o.probability,
       o.expected_close_date, o.owner_id, o.status, c.full_name AS customer_name, u.full_name AS owner_name
FROM unnest($1::uuid[]) AS s(stage_id)
CROSS JOIN LATERAL (
    SELECT * FROM opportunities o WHERE o.stage_id = s.stage_id {filters}
    ORDER BY o.expected_close_date ASC NULLS LAST, o.id LIMIT {limit}
) AS o
LEFT JOIN customers c ON c.id = o.customer_id
LEFT JOIN directory_users u ON u.id = o.owner_id
"""


def quarter(today: date) -> tuple[date, date]:
    first = (today.month - 1) // 3 * 3 + 1
    start = date(today.year, first, 1)
    end_month = first + 2
    end = (date(today.year + (end_month == 12), end_month % 12 + 1, 1)) - timedelta(days=1)
    return start, end


async def measure(
    base: str, database_url: str, seeded: Seeded, args: argparse.Namespace, private_key: str
) -> list[Result]:
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {token(private_key, 'sales_manager', seeded.owners[0])}"}
    pool = await asyncpg.create_pool(
        database_url,
        min_size=2,
        max_size=max(args.concurrency, args.win_concurrency) + 2,
        server_settings={"search_path": SCHEMA},
    )
    connector = aiohttp.TCPConnector(limit=max(args.concurrency, args.win_concurrency) * 2)
    results: list[Result] = []
    async with pool, aiohttp.ClientSession(connector=connector) as http:

        async def get(path: str, params: dict):
            async with http.get(f"{base}{path}", params=params, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status} {body[:200]!r}")

        stage_ids = [
            r["id"]
            for r in await pool.fetch("SELECT id FROM opportunity_stages WHERE is_active ORDER BY sort_order")
        ]
        start, end = quarter(datetime.now(UTC).date())
        year_start, year_end = date(start.year, 1, 1), date(start.year, 12, 31)

        async def run_pair(name: str, samples: int, make_params, api_path: str, sql_run):
            jobs = [make_params() for _ in range(samples)]
            warm = jobs[: min(5, len(jobs))]
            for job in warm:  # warm caches and connections, not measured
                await get(api_path, job)
                await sql_run(job)
            log(f"{name}: {samples} requests via the API at concurrency {args.concurrency}")
            crm = await drive(name, "pipeline-svc", jobs, lambda p: get(api_path, p), args.concurrency)
            log(f"{name}: the same via raw SQL")
            raw = await drive(name, "raw SQL (asyncpg)", jobs, sql_run, args.concurrency)
            results.extend([crm, raw])
            log(
                f"{name}: API p50 {crm.p50_ms} ms p99 {crm.p99_ms} ms | SQL p50 {raw.p50_ms} ms p99 {raw.p99_ms} ms"
            )

        def forecast_sql(rng_start, rng_end):
            async def run(params):
                filters, values = "", [rng_start, rng_end]
                if "ownerId" in params:
                    filters, values = "AND o.owner_id = $3", [*values, uuid.UUID(params["ownerId"])]
                elif "teamId" in params:
                    filters, values = "AND o.team_id = $3", [*values, uuid.UUID(params["teamId"])]
                await pool.fetch(FORECAST_SQL.format(filters=filters), *values)

            return run

        async def board_sql(params):
            filters, values = "", []
            if "ownerId" in params:
                filters, values = "AND owner_id = $2", [uuid.UUID(params["ownerId"])]
            elif "teamId" in params:
                filters, values = "AND team_id = $2", [uuid.UUID(params["teamId"])]
            async with pool.acquire() as conn:
                await conn.fetch(BOARD_SUMMARY_SQL.format(filters=filters), stage_ids, *values)
                await conn.fetch(
                    BOARD_CARDS_SQL.format(
                        filters=filters.replace("owner_id", "o.owner_id").replace("team_id", "o.team_id"),
                        limit=25,
                    ),
                    stage_ids,
                    *values,
                )

        owner = lambda: {"ownerId": str(rng.choice(seeded.owners))}  # noqa: E731
        team = lambda: {"teamId": str(rng.choice(seeded.teams))}  # noqa: E731
        n = args.samples
        await run_pair(
            "forecast quarter, ownerId",
            n,
            lambda: {"period": "quarter", **owner()},
            "/api/v1/opportunities/forecast",
            forecast_sql(start, end),
        )
        await run_pair(
            "forecast year, ownerId",
            n,
            lambda: {"period": "year", **owner()},
            "/api/v1/opportunities/forecast",
            forecast_sql(year_start, year_end),
        )
        await run_pair(
            "forecast quarter, teamId",
            max(10, n // 4),
            lambda: {"period": "quarter", **team()},
            "/api/v1/opportunities/forecast",
            forecast_sql(start, end),
        )
        await run_pair(
            "forecast quarter, all owners",
            max(10, n // 10),
            lambda: {"period": "quarter"},
            "/api/v1/opportunities/forecast",
            forecast_sql(start, end),
        )
        await run_pair("board, ownerId", n, owner, "/api/v1/opportunities/board", board_sql)
        await run_pair("board, teamId", max(10, n // 4), team, "/api/v1/opportunities/board", board_sql)
        await run_pair("board, no filter", max(10, n // 10), dict, "/api/v1/opportunities/board", board_sql)

        # Wins: distinct OPEN opportunities, half through the API, half through the raw baseline.
        open_ids = [
            r["id"]
            for r in await pool.fetch(
                "SELECT id FROM opportunities WHERE status = 'OPEN' ORDER BY random() LIMIT $1", args.wins * 2
            )
        ]
        api_ids, raw_ids = open_ids[: args.wins], open_ids[args.wins :]

        async def win_api(oid):
            async with http.post(f"{base}/api/v1/opportunities/{oid}/win", headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status} {body[:200]!r}")

        won_stage = await pool.fetchval(
            "SELECT id FROM opportunity_stages WHERE is_won ORDER BY sort_order LIMIT 1"
        )

        async def win_raw(oid):
            """The same writes as a win, by hand: lock, update, invoice number, invoice + line, 3 outbox rows."""
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT id, customer_id, amount, currency, title, version, status FROM opportunities"
                    " WHERE id = $1 FOR UPDATE",
                    oid,
                )
                if row["status"] != "OPEN":
                    raise RuntimeError("not open")
                today = datetime.now(UTC).date()
                await conn.execute(
                    "UPDATE opportunities SET status='WON', stage_id=$2, probability=100, actual_close_date=$3,"
                    " updated_at=now(), version=version+1 WHERE id=$1 AND version=$4",
                    oid,
                    won_stage,
                    today,
                    row["version"],
                )
                await conn.execute(
                    "INSERT INTO invoice_number_counters (year, last_value) VALUES ($1, 0) ON CONFLICT DO NOTHING",
                    today.year,
                )
                number = await conn.fetchval(
                    "UPDATE invoice_number_counters SET last_value = last_value + 1 WHERE year = $1 RETURNING last_value",
                    today.year,
                )
                invoice_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO invoices (id, invoice_number, customer_id, opportunity_id, status, currency, total,"
                    " due_date, created_at, updated_at, version) VALUES ($1,$2,$3,$4,'DRAFT',$5,$6,$7,now(),now(),1)",
                    invoice_id,
                    f"RAW-{today.year}-{number:06d}",
                    row["customer_id"],
                    oid,
                    row["currency"],
                    row["amount"],
                    today + timedelta(days=30),
                )
                await conn.execute(
                    "INSERT INTO invoice_lines (id, invoice_id, position, description, quantity, unit_price, discount,"
                    " line_total) VALUES ($1,$2,1,$3,1,$4,0,$4)",
                    uuid.uuid4(),
                    invoice_id,
                    row["title"],
                    row["amount"],
                )
                payload = json.dumps({"opportunityId": str(oid), "amount": str(row["amount"])})
                await conn.executemany(
                    "INSERT INTO event_outbox (event_id, routing_key, payload, created_at, state, attempts)"
                    " VALUES ($1, $2, $3::json, now(), 'PENDING', 0)",
                    [(uuid.uuid4(), key, payload) for key in ("opportunity.won", "invoice.created")],
                )

        for oid in api_ids[:5]:
            await win_api(oid)
        log(f"wins: {len(api_ids) - 5} through the API at concurrency {args.win_concurrency}")
        crm = await drive("win", "pipeline-svc", api_ids[5:], win_api, args.win_concurrency)
        log(f"wins: {len(raw_ids)} as raw transactions")
        raw = await drive("win", "raw SQL (asyncpg)", raw_ids, win_raw, args.win_concurrency)
        results.extend([crm, raw])
        log(f"win: API {crm.per_s}/s p99 {crm.p99_ms} ms | raw {raw.per_s}/s p99 {raw.p99_ms} ms")
    return results


# --- report ---------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = ["scenario", "target", "n", "err", "p50 ms", "p99 ms", "max ms", "per s"]
    rows = [
        [r.scenario, r.target, r.requests, r.errors, r.p50_ms, r.p99_ms, r.max_ms, r.per_s] for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]

    def line(cells):
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"

    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", default=DEFAULT_PG, help="Postgres server (a database is created on it)")
    p.add_argument(
        "--amqp-url", default=DEFAULT_AMQP, help="RabbitMQ; the in-process bus if it does not answer"
    )
    p.add_argument("--opportunities", type=int, default=1_000_000)
    p.add_argument("--owners", type=int, default=200)
    p.add_argument("--teams", type=int, default=20)
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--seed-chunk", type=int, default=100_000)
    p.add_argument(
        "--samples", type=int, default=200, help="measured requests per read scenario (fewer for unfiltered)"
    )
    p.add_argument("--concurrency", type=int, default=4, help="reads in flight")
    p.add_argument("--wins", type=int, default=500, help="wins through the API (and as many raw)")
    p.add_argument("--win-concurrency", type=int, default=16)
    p.add_argument("--keep-db", action="store_true", help="keep the database (its name is printed)")
    p.add_argument("--no-json", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    tag = secrets.token_hex(4)
    db_name = f"crm_pipebench_{tag}"
    database_url = with_database(args.database_url, db_name)
    namespace = f"bench-pipeline-{tag}."
    broker = amqp_reachable(args.amqp_url)
    started = datetime.now(UTC)
    private_key, public_key = signing_keys()
    results: list[Result] = []
    seeded = None
    log(f"creating database {db_name}")
    asyncio.run(create_database(args.database_url, db_name))
    try:
        asyncio.run(migrate(database_url, SCHEMA))
        log(
            f"seeding {args.opportunities:,} opportunities, {args.customers:,} customers, {args.owners} owners"
        )
        seeded = asyncio.run(seed(database_url, args))
        log(f"seeded in {seeded.seconds:.0f}s")
        port = free_port()
        with scratch_dir("pipeline-bench-", keep=args.keep_db, log=log) as data_dir:
            env = service_env(
                SCHEMA,
                database_url=database_url,
                public_key=public_key,
                data_dir=data_dir,
                CRM_PIPELINE_DB_POOL_SIZE="10",
            )
            if broker:
                env.update(CRM_AMQP_URL=args.amqp_url, CRM_EVENTS_NAMESPACE=namespace)
            log(f"starting pipeline-svc on {port} ({'RabbitMQ' if broker else 'in-process bus'})")
            with crm_service(SCHEMA, port, env=env, log_file=data_dir / "pipeline.log"):
                results = run_async(measure(f"http://{HOST}:{port}", database_url, seeded, args, private_key))
    finally:
        if args.keep_db:
            log(f"keeping database {db_name}")
        else:
            log(f"dropping database {db_name}")
            asyncio.run(drop_database(args.database_url, db_name, log))
        if broker:
            asyncio.run(delete_broker_objects(args.amqp_url, namespace, log))
    print()
    print(
        f"pipeline-svc on Postgres, {args.opportunities:,} opportunities ({args.owners} owners, {args.teams} teams, "
        f"{args.customers:,} customers); reads at concurrency {args.concurrency}, wins at {args.win_concurrency}; "
        f"events via {'RabbitMQ' if broker else 'the in-process bus'}; {os.cpu_count()} CPUs"
    )
    print(table(results))
    if not args.no_json:
        document = {
            "started": started.isoformat(),
            "args": vars(args),
            "seed_seconds": seeded.seconds if seeded else None,
            "broker": "rabbitmq" if broker else "memory",
            "results": [asdict(r) for r in results],
        }
        print(f"\nwritten to {write_results(document, 'pipeline-', started)}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
