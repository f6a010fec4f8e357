"""Benchmark of customer-svc on Postgres: list with search + filter, get by id, create throughput,
import of a large CSV; side by side with bare asyncpg queries doing the same reads (the baseline).

    .venv/bin/python bench/customer_bench.py [--customers 200000] [--import-rows 100000]

What a run does, on a fresh database `crm_custbench_<hex>` (dropped afterwards):
1. starts customer-svc as it runs in the distributed mode (`crm serve customer`, its own process,
   uvicorn, Postgres schema `customer`, in-process bus), which migrates the schema;
2. seeds `--customers` customers with COPY (names, emails, companies, statuses, tags, assignees from
   a directory of 50 users, totals, last-contact dates), then ANALYZE;
3. measures, from this process over HTTP (aiohttp, keep-alive):
   - list: `GET /api/v1/customers?q=<a surname>&status=LEAD&pageSize=25` one request at a time
     (p50/p99), plus search only, filter only (status + tag) and a sort by assignee name;
   - get by id: one at a time (p50/p99);
   - create: `--creates` POSTs at `--concurrency` (throughput and p50/p99);
   - import: `--import-rows` new customers as one streamed CSV (elapsed, rows/s);
   - scoped list: the default list and search + filter as a sales rep (team scope: a team of 4 of
     the 50 assignees) against the same as admin (all), interleaved (p50/p99 each);
4. the baseline: the list's two SQL statements (count + page) and the get by id run with asyncpg
   directly on the same database, one at a time, so the service's own overhead shows.
See bench/README_customer.md.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
from _support import (
    DEFAULT_PG,
    crm_service,
    free_port,
    latency_stats,
    logger,
    scratch_database,
    service_env,
    signing_keys,
    token,
)
from customer_svc.service.reactions import value_currency_of

FIRST = (
    "Ada Alan Grace Linus Barbara Edsger Donald Margaret Ken Dennis Frances John Radia Tim Guido Bjarne "
    "Anita Sophie Karen Hedy Niklaus Leslie Yukihiro Jean Carl Rosa Mary Omar Ines Priya Chen Wei Aiko "
    "Lars Nora Pablo Lucia Mateo Elena Ivan Olga Kofi Amara Sven Freya Ravi Meera Tomas Zofia"
).split()
LAST = (
    "Lovelace Turing Hopper Torvalds Liskov Dijkstra Knuth Hamilton Thompson Ritchie Allen Backus Perlman "
    "Berners Rossum Stroustrup Borg Wilson Jones Lamarr Wirth Lamport Matsumoto Sammet Hewitt Franklin "
    "Cartwright Haddad Moreno Patel Zhang Wang Tanaka Lindqvist Berg Garcia Fernandez Lopez Romero Petrov "
    "Ivanova Mensah Okafor Nilsson Johansson Sharma Iyer Novak Kowalski Schmidt Fischer Weber Meyer Wagner "
    "Becker Schulz Hoffmann Koch Richter Klein Wolf Neumann Schwarz Zimmermann Braun Hofmann Hartmann Lange "
    "Schmitt Werner Krause Meier Lehmann Huber Mayer Hermann Walter Kaiser Fuchs Peters Lang Scholz Jung "
    "Keller Vogel Roth Beck Lorenz Baumann Franke Albrecht Ludwig Winter Simon Kraus Vogt Stein Otto Sommer"
).split()
WORDS = (
    "Acme Global Blue Nordic Apex Vertex Summit Quantum Pixel Orbit Harbor Cedar Falcon Iron Silver".split()
)
INDUSTRIES = ["Retail", "Software", "Finance", "Health", "Energy", "Logistics", "Media", "Education"]
TAGS = ["vip", "eu", "us", "apac", "newsletter", "partner", "churn-risk", "enterprise", "smb", "trial"]
STATUSES = ["LEAD"] * 4 + ["PROSPECT"] * 2 + ["CUSTOMER"] * 3 + ["INACTIVE"]
PRIORITIES = ["LOW", "MEDIUM", "MEDIUM", "HIGH", "CRITICAL"]


log = logger("customer-bench")


# --- seeding ----------------------------------------------------------------------------------------


def customer_row(i: int, rng: random.Random, users: list[uuid.UUID], year: int, now: datetime) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = rng.random() < 0.3
    company_name = (
        f"{rng.choice(WORDS)} {last} {rng.choice(['Ltd', 'GmbH', 'Inc', 'AB'])}" if company else None
    )
    created = now - timedelta(seconds=(200_000_000 - i * 997) % 94_000_000)
    contact = created + timedelta(days=rng.randint(1, 300)) if rng.random() < 0.6 else None
    # Open value in USD for half of them; won value for a third, in USD (70%), EUR (20%) or GBP.
    sums: dict[str, list[Decimal]] = {}
    if rng.random() < 0.5:
        sums["USD"] = [Decimal(rng.randint(1, 50_000)), Decimal(0)]
    if rng.random() < 0.3:
        r = rng.random()
        won_in = "USD" if r < 0.7 else "EUR" if r < 0.9 else "GBP"
        sums.setdefault(won_in, [Decimal(0), Decimal(0)])[1] = Decimal(rng.randint(1, 500_000))
    currency = value_currency_of(list(sums))
    total, won = sums.get(currency, [Decimal(0), Decimal(0)])
    status = "CUSTOMER" if won else rng.choice(STATUSES)
    row_id = uuid.uuid4()
    return {
        "value_rows": [(row_id, c, o, w) for c, (o, w) in sums.items()],
        "id": row_id,
        "customer_number": f"CUST-{year}-{i:06d}",
        "type": "COMPANY" if company else "INDIVIDUAL",
        "first_name": None if company else first,
        "last_name": None if company else last,
        "full_name": company_name if company else f"{first} {last}",
        "title": None,
        "company_name": company_name,
        "industry": rng.choice(INDUSTRIES),
        "employee_count": rng.randint(1, 5000) if company else None,
        "annual_revenue": None,
        "email": f"{first}.{last}.{i}@{rng.choice(WORDS).lower()}.example".lower(),
        "phone": f"+1 555 {rng.randint(1000000, 9999999)}",
        "mobile": None,
        "website": None,
        "status": status,
        "priority": rng.choice(PRIORITIES),
        "source": rng.choice(["Web", "Fair", "Referral", "Ads"]),
        "source_campaign_id": None,
        "tags": json.dumps(rng.sample(TAGS, rng.randint(0, 3))),
        "assigned_to_id": rng.choice(users),
        "team_id": None,
        "total_value": total,
        "lifetime_value": won,
        "value_currency": currency,
        "value_totals": json.dumps(
            [
                {"currency": c, "totalValue": f"{o:.2f}", "lifetimeValue": f"{w:.2f}"}
                for c, (o, w) in sorted(sums.items())
            ]
        ),
        "last_contact_date": contact,
        "next_contact_date": None,
        "custom_fields": json.dumps({"segment": rng.choice(["a", "b", "c"])}),
        "notes": None,
        "merged_into_id": None,
        "external_id": None,
        # 1 % archived (crm_common.archive): the lists leave them out, as they do in use.
        "archived_at": created if rng.random() < 0.01 else None,
        "erased_at": None,
        "created_by_id": users[0],
        "created_at": created,
        "updated_at": created,
        "version": 1,
    }


async def seed(pg_url: str, count: int, rng: random.Random) -> dict:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("SET search_path = customer")
        now = datetime.now(UTC)
        users = [uuid.uuid4() for _ in range(50)]
        await conn.copy_records_to_table(
            "directory_users",
            schema_name="customer",
            records=[
                (
                    u,
                    f"user{n}@crm.example",
                    f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    "[]",
                    True,
                    "UTC",
                    1,
                    now,
                )
                for n, u in enumerate(users)
            ],
            columns=["id", "email", "full_name", "roles", "is_active", "time_zone", "version", "updated_at"],
        )
        columns = [
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'customer' AND table_name = 'customers' ORDER BY ordinal_position"
            )
        ]
        ids, surnames = [], []
        chunk = 20_000
        for start in range(1, count + 1, chunk):
            rows = [
                customer_row(i, rng, users, now.year, now)
                for i in range(start, min(start + chunk, count + 1))
            ]
            ids += [r["id"] for r in rows]
            surnames += [r["last_name"] for r in rows if r["last_name"]]
            await conn.copy_records_to_table(
                "customers",
                schema_name="customer",
                # A column customer_row does not fill (one added since, such as archived_at) is null.
                records=[tuple(r.get(c) for c in columns) for r in rows],
                columns=columns,
            )
            await conn.copy_records_to_table(
                "customer_value_totals",
                schema_name="customer",
                records=[v for r in rows for v in r["value_rows"]],
                columns=["customer_id", "currency", "total_value", "lifetime_value"],
            )
            log(f"  seeded {min(start + chunk - 1, count)}/{count}")
        await conn.execute(
            "INSERT INTO customer_number_counters (year, last_value) VALUES ($1, $2) "
            "ON CONFLICT (year) DO UPDATE SET last_value = excluded.last_value",
            now.year,
            count,
        )
        # A sales team of four of the 50 users, for the scoped list (record scopes, issue 13).
        await conn.execute(
            "INSERT INTO directory_teams (id, name, type, manager_id, member_ids, is_active, version, updated_at)"
            " VALUES ($1, 'Bench team', 'SALES', NULL, $2::jsonb, true, 1, $3)",
            uuid.uuid4(),
            json.dumps([str(u) for u in users[:4]]),
            now,
        )
        await conn.execute("ANALYZE")
        return {"ids": ids, "users": users, "surnames": sorted(set(surnames))}
    finally:
        await conn.close()


# --- measurements ---------------------------------------------------------------------------------------


async def timed_gets(session, url_params: list[tuple[str, dict]], headers) -> tuple[list[float], list[int]]:
    samples, totals = [], []
    for url, params in url_params:
        started = time.perf_counter()
        async with session.get(url, params=params, headers=headers) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {url} {params}: {r.status} {body[:300]!r}")
        samples.append(time.perf_counter() - started)
        if url.endswith("/customers"):
            totals.append(json.loads(body)["total"])
    return samples, totals


async def creates(session, base: str, headers, count: int, concurrency: int) -> dict:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    run = secrets.token_hex(3)

    async def worker():
        nonlocal failures
        while not queue.empty():
            i = queue.get_nowait()
            body = {
                "firstName": "Bench",
                "lastName": f"Create{i}",
                "email": f"bench.{run}.{i}@create.example",
                "tags": ["bench"],
            }
            started = time.perf_counter()
            async with session.post(f"{base}/api/v1/customers", json=body, headers=headers) as r:
                await r.read()
                failures += r.status != 201
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        **latency_stats(latencies),
        "concurrency": concurrency,
        "per_second": round(count / elapsed, 1),
        "failures": failures,
    }


async def import_csv(session, base: str, headers, rows: int) -> dict:
    run = secrets.token_hex(3)
    rng = random.Random(7)

    async def body():
        yield b"email,firstName,lastName,status,priority,tags,industry,phone\n"
        batch = []
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            batch.append(
                f"imp.{run}.{i}@import.example,{first},{last},{rng.choice(['LEAD', 'PROSPECT', 'CUSTOMER'])},"
                f"{rng.choice(PRIORITIES)},{';'.join(rng.sample(TAGS, 2))},{rng.choice(INDUSTRIES)},+1 555 {i:07d}\n"
            )
            if len(batch) == 2000:
                yield "".join(batch).encode()
                batch = []
        if batch:
            yield "".join(batch).encode()

    started = time.perf_counter()
    async with session.post(
        f"{base}/api/v1/customers/import",
        data=body(),
        headers={**headers, "Content-Type": "text/csv"},
        timeout=aiohttp.ClientTimeout(total=900),
    ) as r:
        report = await r.json()
        if r.status != 200:
            raise RuntimeError(f"import: {r.status} {report}")
    elapsed = time.perf_counter() - started
    return {
        "rows": rows,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(rows / elapsed),
        "created": report["created"],
        "failed": report["failed"],
    }


# The service's search expression (customer_svc.service.query.search_text) and its default order.
SEARCH = "lower(customer_number || chr(31) || full_name || chr(31) || email || chr(31) || coalesce(company_name, ''))"
BASELINE_COUNT = f"SELECT count(*) FROM customers WHERE {SEARCH} LIKE $1 AND status = $2"
BASELINE_PAGE = f"SELECT * FROM customers WHERE {SEARCH} LIKE $1 AND status = $2 ORDER BY created_at DESC, id DESC LIMIT 25"


async def baseline(pg_url: str, terms: list[str], ids: list[uuid.UUID]) -> dict:
    conn = await asyncpg.connect(pg_url, server_settings={"search_path": "customer"})
    try:
        count, page = await conn.prepare(BASELINE_COUNT), await conn.prepare(BASELINE_PAGE)
        get = await conn.prepare("SELECT * FROM customers WHERE id = $1")
        list_samples, get_samples = [], []
        for term in terms:
            started = time.perf_counter()
            await count.fetchval(f"%{term}%", "LEAD")
            await page.fetch(f"%{term}%", "LEAD")
            list_samples.append(time.perf_counter() - started)
        for customer_id in ids:
            started = time.perf_counter()
            await get.fetchrow(customer_id)
            get_samples.append(time.perf_counter() - started)
        plan = await conn.fetch(
            "EXPLAIN " + BASELINE_COUNT.replace("$1", f"'%{terms[0]}%'").replace("$2", "'LEAD'")
        )
        return {
            "list": latency_stats(list_samples),
            "get": latency_stats(get_samples),
            "plan": [r[0] for r in plan],
        }
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    name = f"crm_custbench_{secrets.token_hex(4)}"
    private_key, public_key = signing_keys()
    headers = {"Authorization": f"Bearer {token(private_key, 'admin')}"}
    results: dict = {"customers": args.customers, "started": datetime.now(UTC).isoformat(), "database": name}
    async with scratch_database(args.database_url, name, keep=args.keep, log=log) as db_url:
        with tempfile.TemporaryDirectory() as data_dir:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            # No CRM_AMQP_URL: the service runs on its in-process bus.
            env = service_env(
                "customer",
                database_url=db_url,
                public_key=public_key,
                data_dir=Path(data_dir),
                CRM_CUSTOMER_DB_POOL_SIZE="10",
            )
            # customer-svc migrates its schema as it starts.
            with crm_service("customer", port, env=env, log_file=Path(data_dir) / "service.log"):
                connector = aiohttp.TCPConnector(limit=max(args.concurrency, 4) * 2)
                async with aiohttp.ClientSession(connector=connector) as session:
                    log(f"customer-svc up on {base}; seeding {args.customers} customers into {name}")
                    t0 = time.perf_counter()
                    data = await seed(db_url, args.customers, rng)
                    results["seed_seconds"] = round(time.perf_counter() - t0, 1)
                    terms = [rng.choice(data["surnames"]).lower() for _ in range(args.list_requests)]
                    url = f"{base}/api/v1/customers"
                    # Warm the service's connections and plans.
                    await timed_gets(
                        session, [(url, {"q": t, "status": "LEAD"}) for t in terms[:20]], headers
                    )
                    log("list: search + filter")
                    s, totals = await timed_gets(
                        session, [(url, {"q": t, "status": "LEAD", "pageSize": 25}) for t in terms], headers
                    )
                    results["list_search_filter"] = {
                        **latency_stats(s),
                        "avg_total": round(sum(totals) / len(totals)),
                    }
                    s, totals = await timed_gets(
                        session, [(url, {"q": t}) for t in terms[: args.list_requests // 2]], headers
                    )
                    results["list_search"] = {
                        **latency_stats(s),
                        "avg_total": round(sum(totals) / len(totals)),
                    }
                    filters = [
                        (url, {"status": rng.choice(STATUSES), "tags": rng.choice(TAGS)})
                        for _ in range(args.list_requests // 2)
                    ]
                    s, totals = await timed_gets(session, filters, headers)
                    results["list_filter_status_tag"] = {
                        **latency_stats(s),
                        "avg_total": round(sum(totals) / len(totals)),
                    }
                    sorts = [
                        (url, {"status": "CUSTOMER", "sort": "assignedToName"})
                        for _ in range(args.list_requests // 4)
                    ]
                    s, _ = await timed_gets(session, sorts, headers)
                    results["list_sort_assignee_name"] = latency_stats(s)
                    log("scoped list: a sales rep (team scope, a team of 4 of the 50 assignees) vs admin")
                    rep = {"Authorization": f"Bearer {token(private_key, 'sales_rep', data['users'][0])}"}
                    plain = [(url, {"pageSize": 25}) for _ in range(args.list_requests // 2)]
                    searched = [(url, {"q": t, "status": "LEAD", "pageSize": 25}) for t in terms]
                    # Interleaved, so both see the same machine.
                    for label, calls in (("list_default", plain), ("list_search_filter", searched)):
                        unscoped, scoped, totals = [], [], []
                        for call in calls:
                            a, _ = await timed_gets(session, [call], headers)
                            b, t = await timed_gets(session, [call], rep)
                            unscoped += a
                            scoped += b
                            totals += t
                        results[f"scoped_{label}"] = {
                            "unscoped": latency_stats(unscoped),
                            "scoped": {
                                **latency_stats(scoped),
                                "avg_total": round(sum(totals) / len(totals)),
                            },
                        }
                    log("ranking: top 5 customers by lifetime value, per currency")
                    rank = [
                        (f"{url}/ranking", {"status": "CUSTOMER", "limit": 5})
                        for _ in range(args.list_requests // 2)
                    ]
                    s, _ = await timed_gets(session, rank, headers)
                    results["ranking_top5"] = latency_stats(s)
                    log("get by id")
                    ids = rng.sample(data["ids"], args.get_requests)
                    s, _ = await timed_gets(session, [(f"{url}/{i}", {}) for i in ids], headers)
                    results["get_by_id"] = latency_stats(s)
                    if not args.reads_only:
                        log(f"create x{args.creates} at concurrency {args.concurrency}")
                        results["create"] = await creates(
                            session, base, headers, args.creates, args.concurrency
                        )
                        log(f"import of {args.import_rows} rows")
                        results["import"] = await import_csv(session, base, headers, args.import_rows)
                log("baseline: the same reads with bare asyncpg")
                results["baseline"] = await baseline(db_url, terms, ids)
    return results


def report(r: dict) -> str:
    rows = [
        ("list: search + status filter (service)", r["list_search_filter"]),
        ("list: same two queries, bare asyncpg (baseline)", r["baseline"]["list"]),
        ("list: search only", r["list_search"]),
        ("list: status + tag filter", r["list_filter_status_tag"]),
        ("list: status filter, sort by assignee name", r["list_sort_assignee_name"]),
        ("ranking: top 5 by lifetimeValue per currency", r["ranking_top5"]),
        ("get by id (service)", r["get_by_id"]),
        ("get by id, bare asyncpg (baseline)", r["baseline"]["get"]),
        *((("create", r["create"]),) if "create" in r else ()),
    ]
    for label in ("list_default", "list_search_filter"):
        pair = r[f"scoped_{label}"]
        rows += [
            (f"{label.replace('_', ' ')}: admin (all)", pair["unscoped"]),
            (f"{label.replace('_', ' ')}: sales rep (team scope)", pair["scoped"]),
        ]
    out = [f"customer-svc on Postgres, {r['customers']:,} customers (seeded in {r['seed_seconds']} s)", ""]
    out.append(f"{'':52} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  extra")
    for label, s in rows:
        extra = []
        if "avg_total" in s:
            extra.append(f"avg matches {s['avg_total']}")
        if "per_second" in s:
            extra.append(f"{s['per_second']}/s at concurrency {s['concurrency']}, failures {s['failures']}")
        out.append(
            f"{label:52} {s['n']:>6} {s['p50_ms']:>8} {s['p99_ms']:>8} {s['max_ms']:>8}  {', '.join(extra)}"
        )
    if "import" in r:
        i = r["import"]
        out += [
            "",
            f"import: {i['rows']:,} rows in {i['seconds']} s ({i['rows_per_second']:,} rows/s), created {i['created']:,}, failed {i['failed']}",
        ]
    for label in ("list_default", "list_search_filter"):
        pair = r[f"scoped_{label}"]
        ratio = pair["scoped"]["p99_ms"] / pair["unscoped"]["p99_ms"]
        out.append(f"scoped/unscoped p99, {label.replace('_', ' ')}: {ratio:.2f}x (target: within 1.5x)")
    out += [
        "",
        "plan of the baseline's count (search + filter):",
        *("  " + line for line in r["baseline"]["plan"]),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--list-requests", type=int, default=400)
    parser.add_argument("--get-requests", type=int, default=1000)
    parser.add_argument("--creates", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reads-only", action="store_true", help="skip the create and import runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments))
    print(report(figures))
    if arguments.json:
        arguments.json.write_text(json.dumps(figures, indent=2))
