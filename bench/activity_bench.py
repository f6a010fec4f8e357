"""Benchmark of activity-svc on Postgres: customer timeline latency on a big table, and the rate at
which system notes are recorded from a backlog of events on RabbitMQ.

    .venv/bin/python bench/activity_bench.py [--activities 2000000] [--events 50000] [--requests 2000]

On a fresh database (dropped afterwards unless --keep):

1. load: the activity schema by its migrations, then `--activities` rows spread over `--customers`
   customers (plus one hot customer with `--hot` rows), built in Postgres with
   INSERT ... SELECT generate_series (secondary indexes dropped during the load and rebuilt from
   their own definitions, so the table ends with exactly the migration's indexes), ANALYZE;
2. ingestion: `--events` events of every type activity-svc records a note for are published to
   RabbitMQ while no consumer runs (a backlog); then activity-svc is started as its own process
   (`crm serve activity`) and the time from its readiness to the last event committed is measured;
   the baseline is a bare aio-pika consumer doing, per event, one transaction with the inbox row
   and one INSERT of the note (no validation, no ORM) on the same backlog;
3. timeline: `GET /api/v1/customers/{id}/timeline` (page 1, 25 items) on random customers, one
   request at a time over keep-alive HTTP, p50/p99; the baseline runs the two SQL statements a
   page needs (count, page) directly with asyncpg.

Prints a table and writes bench/results/activity-<UTC time>.json (unless --no-json).
"""

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
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
    service_env,
    signing_keys,
    token,
    write_results,
)
from activity_svc.settings import Settings as ActivitySettings
from crm_common.contracts import campaign, customer, pipeline, ticket
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.envelope import event_from
from crm_common.events.rabbitmq_bus import RabbitBus

SCHEMA = "activity"

log = logger("activity-bench")


def timeline_stats(seconds: list[float]) -> dict:
    return latency_stats(seconds, (50, 95, 99))


def customer_id(i: int) -> uuid.UUID:
    return md5_uuid(f"customer-{i}")


HOT_CUSTOMER = md5_uuid("customer-hot")


# --- load -------------------------------------------------------------------------------------------

LOAD_SQL = """
INSERT INTO activities (
    id, type, subject, description, customer_id, opportunity_id, ticket_id, start_date, end_date,
    duration, is_all_day, status, priority, owner_id, outcome, next_steps, follow_up_date,
    attachments, links, custom_fields, system, source_event_id, completed_at, follow_up_of_id,
    created_at, updated_at, version)
SELECT
    gen_random_uuid(),
    (ARRAY['CALL','EMAIL','MEETING','TASK','NOTE','SMS','DEMO'])[1 + g % 7],
    'Activity ' || g,
    CASE WHEN g % 4 = 0 THEN 'Notes about activity ' || g END,
    {customer},
    CASE WHEN g % 3 = 0 THEN md5('opportunity-' || (g % {opportunities}))::uuid END,
    CASE WHEN g % 10 = 0 THEN md5('ticket-' || (g % {tickets}))::uuid END,
    t.ts, t.ts + interval '30 minutes', 30, false,
    CASE WHEN g % 3 = 1 THEN 'COMPLETED'
         ELSE (ARRAY['PLANNED','IN_PROGRESS','COMPLETED','CANCELLED'])[1 + g % 4] END,
    (ARRAY['LOW','NORMAL','NORMAL','HIGH','URGENT'])[1 + g % 5],
    md5('owner-' || (g % {owners}))::uuid,
    NULL, NULL, NULL,
    '[]'::jsonb, '[]'::jsonb, '{{}}'::jsonb,
    g % 3 = 1,
    CASE WHEN g % 3 = 1 THEN gen_random_uuid() END,
    CASE WHEN g % 3 = 1 THEN t.ts END,
    NULL,
    t.ts, t.ts, 1
FROM generate_series(1, {count}) AS g,
     LATERAL (SELECT timestamptz '2024-01-01 00:00+00'
                     + ((g::bigint * 7919) % 63072000) * interval '1 second' AS ts) AS t
"""


async def load(url: str, args) -> dict:
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        await conn.execute("SET maintenance_work_mem = '256MB'")
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'activities'"
            " AND indexname LIKE 'ix_%'",
            SCHEMA,
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        t0 = time.perf_counter()
        common = {"opportunities": args.customers * 2, "tickets": args.customers, "owners": args.owners}
        await conn.execute(
            LOAD_SQL.format(
                customer=f"md5('customer-' || (g % {args.customers}))::uuid", count=args.activities, **common
            )
        )
        if args.hot:
            await conn.execute(
                LOAD_SQL.format(customer="md5('customer-hot')::uuid", count=args.hot, **common)
            )
        inserted = time.perf_counter()
        for row in indexes:
            await conn.execute(row["indexdef"])
        indexed = time.perf_counter()
        await conn.execute(
            "INSERT INTO customer_refs (id, customer_number, full_name, merged_into_id, version, updated_at)"
            " SELECT md5('customer-' || i)::uuid, 'CUST-2025-' || lpad(i::text, 6, '0'), 'Customer ' || i,"
            " NULL, 1, now() FROM generate_series(0, $1 - 1) AS i",
            args.customers,
        )
        await conn.execute(
            "INSERT INTO customer_refs (id, customer_number, full_name, merged_into_id, version, updated_at)"
            " VALUES (md5('customer-hot')::uuid, 'CUST-2025-999999', 'Hot Customer', NULL, 1, now())"
        )
        await conn.execute(
            "INSERT INTO directory_users (id, email, full_name, roles, is_active, time_zone, version, updated_at)"
            " SELECT md5('owner-' || i)::uuid, 'owner' || i || '@example.com', 'Owner ' || i, '[\"sales_rep\"]',"
            " true, 'UTC', 1, now() FROM generate_series(0, $1 - 1) AS i",
            args.owners,
        )
        # What autovacuum does to a table this size soon after such a load (visibility map, stats).
        await conn.execute("VACUUM ANALYZE")
        done = time.perf_counter()
        rows = await conn.fetchval("SELECT count(*) FROM activities")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('activities'))")
        return {
            "rows": rows,
            "table_size": size,
            "insert_s": round(inserted - t0, 1),
            "index_s": round(indexed - inserted, 1),
            "total_s": round(done - t0, 1),
        }
    finally:
        await conn.close()


# --- events -----------------------------------------------------------------------------------------


def backlog(n: int, customers: int) -> list:
    """n events cycling through every type activity-svc records a note for (merges aside: they
    re-point a customer's whole history and are rare), about existing customers."""
    rnd = random.Random(7)
    events = []
    for i in range(n):
        cid = customer_id(rnd.randrange(customers))
        opp, tck = uuid.uuid4(), uuid.uuid4()
        actor = md5_uuid(f"owner-{i % 200}")
        k = i % 12
        state = dict(
            opportunity_id=opp,
            customer_id=cid,
            title=f"Deal {i}",
            status="OPEN",
            amount=Decimal("1250.00"),
            currency="EUR",
            probability=25,
            stage_id=uuid.uuid4(),
            stage_name="Proposal",
            owner_id=actor,
        )
        tstate = dict(
            ticket_id=tck,
            ticket_number=f"TCK-2026-{i:06d}",
            subject="Broken",
            customer_id=cid,
            status="OPEN",
            priority="HIGH",
        )
        if k == 0:
            p = customer.CustomerCreated(
                customer_id=uuid.uuid4(),
                customer_number=f"CUST-2026-{i:06d}",
                type="COMPANY",
                full_name=f"New {i}",
                email=f"n{i}@example.com",
                status="LEAD",
                created_by=actor,
            )
        elif k == 1:
            p = customer.CustomerConverted(
                customer_id=cid,
                customer_number="CUST-2025-000001",
                full_name="Customer",
                previous_status="LEAD",
                status="CUSTOMER",
                converted_by=actor,
            )
        elif k == 2:
            p = customer.CustomerAssigned(
                customer_id=cid,
                customer_number="CUST-2025-000001",
                full_name="Customer",
                assigned_to_id=actor,
                assigned_by=actor,
            )
        elif k == 3:
            p = pipeline.OpportunityCreated(**state, created_by=actor)
        elif k == 4:
            p = pipeline.OpportunityStageChanged(
                **state, from_stage_id=uuid.uuid4(), from_stage_name="Qualification", changed_by=actor
            )
        elif k == 5:
            p = pipeline.OpportunityWon(
                **{**state, "status": "WON"}, close_date=date(2026, 11, 1), won_by=actor
            )
        elif k == 6:
            p = pipeline.OpportunityLost(
                **{**state, "status": "LOST"}, close_date=date(2026, 11, 1), reason="Price", lost_by=actor
            )
        elif k == 7:
            p = ticket.TicketCreated(**tstate, type="INCIDENT", created_by=actor)
        elif k == 8:
            p = ticket.TicketEscalated(**tstate, escalation_level=2, reason="SLA", escalated_by=actor)
        elif k == 9:
            p = ticket.TicketResolved(
                **{**tstate, "status": "RESOLVED"},
                resolution="Fixed",
                resolved_at=datetime.now(UTC),
                resolved_by=actor,
            )
        elif k == 10:
            p = ticket.TicketClosed(
                **{**tstate, "status": "CLOSED"}, closed_at=datetime.now(UTC), closed_by=actor
            )
        else:
            p = campaign.CampaignTargetAdded(
                campaign_id=uuid.uuid4(), campaign_name="Spring", customer_id=cid
            )
        events.append(event_from(p, service=p.event_type.split(".")[0], subject=uuid.uuid4(), sequence=2))
    return events


async def publish_backlog(amqp_url: str, namespace: str, events: list, extra_queue: str) -> float:
    bus = RabbitBus(amqp_url, namespace=namespace)
    await bus.start()
    try:
        for consumer, keys in SUBSCRIPTIONS.items():
            await bus.declare(consumer, keys)
        await bus.declare(extra_queue, SUBSCRIPTIONS["activity"])
        t0 = time.perf_counter()
        for i in range(0, len(events), 1000):
            errors = [e for e in await bus.publish(events[i : i + 1000], timeout=60) if e is not None]
            if errors:
                raise RuntimeError(f"publish failed: {errors[0]!r}")
        return time.perf_counter() - t0
    finally:
        await bus.close()


async def count_inbox(url: str, consumer: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.event_inbox WHERE consumer = $1", consumer)
    finally:
        await conn.close()


async def wait_drained(url: str, consumer: str, target: int, timeout: float) -> tuple[float, list]:
    """Poll the inbox until `target` events are recorded; (seconds, [(t, count)] samples)."""
    conn = await asyncpg.connect(url)
    samples = []
    t0 = time.perf_counter()
    try:
        while True:
            n = await conn.fetchval(
                f"SELECT count(*) FROM {SCHEMA}.event_inbox WHERE consumer = $1", consumer
            )
            now = time.perf_counter() - t0
            samples.append((round(now, 2), n))
            if n >= target:
                return now, samples
            if now > timeout:
                raise RuntimeError(f"{consumer}: only {n} of {target} events after {timeout}s")
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


def steady_rate(samples: list, target: int) -> float | None:
    """Events/s between 10% and 90% of the backlog (start-up and tail left out)."""
    lo = next(((t, n) for t, n in samples if n >= 0.1 * target), None)
    hi = next(((t, n) for t, n in samples if n >= 0.9 * target), None)
    if not lo or not hi or hi[0] <= lo[0]:
        return None
    return round((hi[1] - lo[1]) / (hi[0] - lo[0]), 1)


async def baseline_consumer(url: str, amqp_url: str, namespace: str, queue: str, target: int, timeout: float):
    """The least a consumer must do per event: parse it, one transaction with the inbox row and one
    INSERT of a note, then ack. Same prefetch and pool size as the service's settings."""
    settings = ActivitySettings()
    pool = await asyncpg.create_pool(
        url,
        min_size=settings.db_pool_size,
        max_size=settings.db_pool_size,
        server_settings={"search_path": SCHEMA},
    )
    connection = await aio_pika.connect_robust(amqp_url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=settings.event_prefetch)
    q = await channel.get_queue(f"{namespace}{queue}.events", ensure=True)
    done = asyncio.Event()
    count = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal count
        body = json.loads(message.body)
        data = body.get("data", {})
        async with pool.acquire() as conn, conn.transaction():
            claimed = await conn.execute(
                "INSERT INTO event_inbox (consumer, event_id, event_type, processed_at)"
                " VALUES ($1, $2, $3, now()) ON CONFLICT DO NOTHING",
                queue,
                uuid.UUID(body["id"]),
                body["type"],
            )
            if claimed.endswith(" 1"):
                await conn.execute(
                    "INSERT INTO activities (id, type, subject, description, customer_id, start_date, status,"
                    " priority, owner_id, attachments, links, custom_fields, system, is_all_day,"
                    " source_event_id, created_at, updated_at, version) VALUES ($1, 'NOTE', $2, $3, $4, $5,"
                    " 'COMPLETED', 'NORMAL', $6, '[]', '[]', '{}', true, false, $7, now(), now(), 1)",
                    uuid.uuid4(),
                    body["type"],
                    json.dumps(data)[:200],
                    uuid.UUID(data["customerId"]) if data.get("customerId") else None,
                    datetime.fromisoformat(body["time"]),
                    uuid.UUID(int=0),
                    uuid.uuid4(),
                )
        await message.ack()
        count += 1
        if count >= target:
            done.set()

    t0 = time.perf_counter()
    await q.consume(on_message)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await connection.close()
        await pool.close()
    return time.perf_counter() - t0


async def dead_letters(amqp_url: str, namespace: str) -> int:
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        q = await channel.declare_queue(f"{namespace}activity.events.dlq", passive=True)
        return q.declaration_result.message_count
    finally:
        await connection.close()


# --- timeline ---------------------------------------------------------------------------------------


async def http_timelines(port: int, bearer: str, ids: list[uuid.UUID], warmup: int) -> list[float]:
    headers = {"Authorization": f"Bearer {bearer}"}
    out = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http:
        for i, cid in enumerate(ids):
            t0 = time.perf_counter()
            async with http.get(
                f"http://{HOST}:{port}/api/v1/customers/{cid}/timeline", headers=headers
            ) as r:
                body = await r.json()
            elapsed = time.perf_counter() - t0
            if r.status != 200 or not body["items"]:
                raise RuntimeError(f"timeline {cid}: {r.status} {str(body)[:200]}")
            if i >= warmup:
                out.append(elapsed)
    return out


async def sql_timelines(url: str, ids: list[uuid.UUID], warmup: int) -> list[float]:
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    out = []
    try:
        for i, cid in enumerate(ids):
            t0 = time.perf_counter()
            async with conn.transaction():
                await conn.fetchval("SELECT count(*) FROM activities WHERE customer_id = $1", cid)
                rows = await conn.fetch(
                    "SELECT * FROM activities WHERE customer_id = $1 ORDER BY start_date DESC, id DESC LIMIT 25",
                    cid,
                )
            elapsed = time.perf_counter() - t0
            if not rows:
                raise RuntimeError(f"no rows for {cid}")
            if i >= warmup:
                out.append(elapsed)
    finally:
        await conn.close()
    return out


# --- main -------------------------------------------------------------------------------------------


async def run(args) -> dict:
    tag = secrets.token_hex(4)
    db_name = f"crm_actbench_{tag}"
    namespace = f"actbench-{tag}."
    result: dict = {"args": vars(args), "database": db_name, "started": datetime.now(UTC).isoformat()}
    async with scratch_database(args.database_url, db_name, keep=args.keep, log=log) as url:
        with scratch_dir("actbench-", keep=args.keep, log=log) as work:
            try:
                await measure(args, url, work, namespace, result)
            finally:
                if args.events:
                    await delete_broker_objects(args.amqp_url, namespace, log, extra_consumers=["baseline"])
    return result


async def measure(args, url: str, work: Path, namespace: str, result: dict) -> None:
    log(f"database {result['database']}: migrating")
    await migrate(url, SCHEMA)
    log(f"loading {args.activities:,} activities over {args.customers:,} customers (+{args.hot:,} hot)")
    result["load"] = await load(url, args)
    log(f"loaded: {result['load']}")

    private, public = signing_keys()
    env = service_env(SCHEMA, database_url=url, public_key=public, data_dir=work)
    port = free_port()
    log_file = work / "activity.log"
    # Polled often: the drain is timed from the moment the service is ready.
    poll = 0.05

    if not args.events:
        with crm_service(SCHEMA, port, env=env, log_file=log_file, poll=poll) as proc:
            result["timeline"] = await timelines(args, url, port, private, proc.pid)
        return
    env.update(CRM_AMQP_URL=args.amqp_url, CRM_EVENTS_NAMESPACE=namespace)
    events = backlog(args.events, args.customers)
    log(f"publishing a backlog of {len(events):,} events")
    publish_s = await publish_backlog(args.amqp_url, namespace, events, "baseline")
    log(f"published in {publish_s:.1f}s; starting activity-svc")
    t_start = time.perf_counter()
    with crm_service(SCHEMA, port, env=env, log_file=log_file, poll=poll) as proc:
        ready_s = time.perf_counter() - t_start
        before = cpu_sample(proc.pid)
        drain_s, samples = await wait_drained(url, "activity", len(events), args.drain_timeout)
        cpu = cpu_used(before, cpu_sample(proc.pid), drain_s, "service")
        notes = await asyncpg_fetchval(
            url,
            f"SELECT count(*) FROM {SCHEMA}.activities WHERE system AND created_at > now() - interval '1 day'",
        )
        # Dead letters: the consumer's table, plus what it could not even record (the broker's DLQ).
        dlq = await dead_letters(args.amqp_url, namespace) + await asyncpg_fetchval(
            url, f"SELECT count(*) FROM {SCHEMA}.event_dead_letters"
        )
        log(f"activity-svc drained {len(events):,} events in {drain_s:.1f}s after ready ({ready_s:.1f}s)")
        result["ingest"] = {
            "events": len(events),
            "publish_s": round(publish_s, 1),
            "ready_s": round(ready_s, 2),
            "drain_s": round(drain_s, 2),
            # Events recorded between readiness and the end, over that time.
            "already_at_ready": samples[0][1],
            "rate_per_s": round((len(events) - samples[0][1]) / drain_s, 1),
            "steady_rate_per_s": steady_rate(samples, len(events)),
            "notes_recorded": notes,
            "dead_letters": dlq,
            "cpu": cpu,
        }
        if not args.no_baseline:
            log("baseline consumer on the same backlog")
            base_s = await baseline_consumer(
                url, args.amqp_url, namespace, "baseline", len(events), args.drain_timeout
            )
            result["ingest"]["baseline_s"] = round(base_s, 2)
            result["ingest"]["baseline_rate_per_s"] = round(len(events) / base_s, 1)
        result["timeline"] = await timelines(args, url, port, private, proc.pid)


async def asyncpg_fetchval(url: str, sql: str):
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def timelines(args, url: str, port: int, private: str, pid: int) -> dict:
    rnd = random.Random(11)
    n = args.warmup + args.requests
    ids = [customer_id(rnd.randrange(args.customers)) for _ in range(n)]
    bearer = token(private, "sales_rep")
    log(f"timeline: {args.requests:,} requests (+{args.warmup} warm-up), one at a time")
    before, t0 = cpu_sample(pid), time.perf_counter()
    out = {"service": timeline_stats(await http_timelines(port, bearer, ids, args.warmup))}
    out["service"]["cpu"] = cpu_used(before, cpu_sample(pid), time.perf_counter() - t0, "service")
    if args.hot:
        hot = [HOT_CUSTOMER] * (args.warmup // 4 + args.hot_requests)
        out["service_hot"] = timeline_stats(await http_timelines(port, bearer, hot, args.warmup // 4))
    if not args.no_baseline:
        out["baseline_sql"] = timeline_stats(await sql_timelines(url, ids, args.warmup))
        if args.hot:
            hot = [HOT_CUSTOMER] * (args.warmup // 4 + args.hot_requests)
            out["baseline_sql_hot"] = timeline_stats(await sql_timelines(url, hot, args.warmup // 4))
    return out


def report(result: dict) -> None:
    load = result["load"]
    print(
        f"\nactivities: {load['rows']:,} rows ({load['table_size']} with indexes), loaded in {load['total_s']}s "
        f"(insert {load['insert_s']}s, indexes {load['index_s']}s)"
    )
    if "ingest" in result:
        i = result["ingest"]
        line = (
            f"ingestion: {i['events']:,} events -> {i['notes_recorded']:,} notes in {i['drain_s']}s: "
            f"{i['rate_per_s']}/s (steady {i['steady_rate_per_s']}/s), dead letters {i['dead_letters']}"
        )
        if "baseline_rate_per_s" in i:
            line += f"; bare consumer {i['baseline_rate_per_s']}/s, ratio {i['rate_per_s'] / i['baseline_rate_per_s']:.2f}"
        print(line)
        if i.get("cpu"):
            print(f"  cpu during the drain: {i['cpu']}")
    print(f"\n{'timeline page (25)':<28}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    labels = {
        "service": "activity-svc (HTTP)",
        "baseline_sql": "bare SQL (asyncpg)",
        "service_hot": "activity-svc, hot customer",
        "baseline_sql_hot": "bare SQL, hot customer",
    }
    for key, label in labels.items():
        s = result["timeline"].get(key)
        if s:
            print(f"{label:<28}{s['n']:>6}{s['p50_ms']:>9}{s['p95_ms']:>9}{s['p99_ms']:>9}{s['max_ms']:>9}")
    cpu = result["timeline"]["service"].get("cpu")
    if cpu:
        print(f"  cpu during the activity-svc timeline run: {cpu}")
        print("  (machine_cores_busy well above service_cores + ~1 means other jobs shared the machine)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activities", type=int, default=2_000_000)
    p.add_argument("--customers", type=int, default=20_000, help="activities are spread evenly over them")
    p.add_argument("--hot", type=int, default=50_000, help="activities of one extra, busy customer (0: none)")
    p.add_argument("--owners", type=int, default=200)
    p.add_argument("--events", type=int, default=50_000, help="backlog size for ingestion (0: skip)")
    p.add_argument("--requests", type=int, default=2000, help="measured timeline requests")
    p.add_argument("--hot-requests", type=int, default=300)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--drain-timeout", type=float, default=900)
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--database-url", default=DEFAULT_PG)
    p.add_argument("--amqp-url", default=DEFAULT_AMQP)
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--no-json", action="store_true")
    args = p.parse_args()
    result = asyncio.run(run(args))
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    report(result)
    if not args.no_json:
        print(f"\nwritten {write_results(result, 'activity-')}")


if __name__ == "__main__":
    main()
