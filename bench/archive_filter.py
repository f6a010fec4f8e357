"""What the archive filter costs the customer list (crm_common.archive): the list's page and count
statements as they ran before archiving existed, and with `archived_at IS NULL` as the default list
now runs them, side by side (interleaved) on the same Postgres database, with their plans.

    .venv/bin/python bench/archive_filter.py [--customers 100000] [--runs 200]

A fresh database `crm_archbench_<hex>` (dropped afterwards) gets customer-svc's schema (its
migrations) and `--customers` customers seeded as bench/customer_bench.py does (1 % archived), then
VACUUM ANALYZE. Statements, one at a time with asyncpg:
- the default list's page: newest 25 (`ORDER BY created_at DESC, id DESC LIMIT 25`) and its count;
- search + status filter (`q=<surname>&status=LEAD`): page and count.
"""

import argparse
import asyncio
import os
import random
import secrets
import time

import asyncpg
from _support import DEFAULT_PG, latency_stats, logger, migrate, scratch_database
from customer_bench import SEARCH, seed

log = logger("archive-bench")
LIVE = " AND archived_at IS NULL"
STATEMENTS = {
    "default list, page": "SELECT * FROM customers WHERE true{f} ORDER BY created_at DESC, id DESC LIMIT 25",
    "default list, count": "SELECT count(*) FROM customers WHERE true{f}",
    "search + status, page": (
        f"SELECT * FROM customers WHERE {SEARCH} LIKE $1 AND status = 'LEAD'{{f}} "
        "ORDER BY created_at DESC, id DESC LIMIT 25"
    ),
    "search + status, count": f"SELECT count(*) FROM customers WHERE {SEARCH} LIKE $1 AND status = 'LEAD'{{f}}",
}


async def main(args) -> None:
    name = f"crm_archbench_{secrets.token_hex(4)}"
    async with scratch_database(args.database_url, name, keep=False, log=log) as db_url:
        await migrate(db_url, "customer")
        started = time.perf_counter()
        data = await seed(db_url, args.customers, random.Random(args.seed))
        log(f"seeded {args.customers} customers in {time.perf_counter() - started:.1f} s")
        conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute("SET search_path = customer")
            await conn.execute("VACUUM ANALYZE customers")  # as autovacuum leaves a table at rest
            archived = await conn.fetchval("SELECT count(*) FROM customers WHERE archived_at IS NOT NULL")
            print(
                f"\n{args.customers:,} customers, {archived:,} archived; {args.runs} runs each, interleaved\n"
            )
            print(f"{'':40} {'before p50':>11} {'p99':>8} {'with filter p50':>16} {'p99':>8}  ms")
            rng = random.Random(args.seed)
            surnames = data["surnames"]
            for label, sql in STATEMENTS.items():
                before = await conn.prepare(sql.format(f=""))
                after = await conn.prepare(sql.format(f=LIVE))
                times: dict[str, list[float]] = {"before": [], "after": []}
                for _ in range(args.runs):
                    params = [f"%{rng.choice(surnames).lower()}%"] if "$1" in sql else []
                    for key, statement in (("before", before), ("after", after)):
                        t = time.perf_counter()
                        await statement.fetch(*params)
                        times[key].append(time.perf_counter() - t)
                b, a = latency_stats(times["before"]), latency_stats(times["after"])
                print(f"{label:40} {b['p50_ms']:>11} {b['p99_ms']:>8} {a['p50_ms']:>16} {a['p99_ms']:>8}")
            for label in STATEMENTS:
                for key, f in (("before", ""), ("with filter", LIVE)):
                    sql = STATEMENTS[label].format(f=f).replace("$1", "'%lovelace%'")
                    plan = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}")
                    print(f"\nplan, {label} ({key}):")
                    for row in plan:
                        print("  " + row[0])
        finally:
            await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    asyncio.run(main(parser.parse_args()))
