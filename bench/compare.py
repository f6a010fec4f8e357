"""The CRM beside the bare stack, side by side in one run (issue 14's table).

For each mode, on fresh state: start the CRM as it runs for real (rate limiting off) and a bare
FastAPI app on the same database driver (bench/baseline_app.py: one SELECT by primary key, one
INSERT), seed `--customers` customers, then run the same closed-loop load generator (`--concurrency`
clients, aiohttp on uvloop) against each case for `--seconds`, the cases interleaved in `--rounds`
rounds (each round in a different order), and print req/s per case with its ratio to the bare figure
it is measured against:

    case            what one request is
    bare GET        bare app, GET /customers/{id}: one SELECT by primary key
    direct GET      customer-svc's own port, GET /api/v1/customers/{id} (distributed mode only)
    gateway GET     the same GET through the gateway
    gateway list q  GET /api/v1/customers?q=person1 (25 rows + total) through the gateway
    bare INSERT     bare app, POST /customers: one INSERT
    gateway POST    POST /api/v1/customers through the gateway, every service consuming its events
    opportunity GET / board / POST / win, ticket GET / POST: the same shapes for pipeline-svc and
                    ticket-svc through the gateway (`--cases customer` leaves them out)

After each POST phase it times the drain: until every consumer queue on RabbitMQ is empty and every
created customer's "Customer created" note is in activity-svc (the embedded default: the note).
After the warm-up and after each round it reads each server process's resident memory (RSS); per
case it prints the servers' CPU time per request served (the figure other load moves least).

    .venv/bin/python bench/compare.py [--mode embedded|distributed|both] [--seconds 5] [--rounds 3]

The machine's other load changes absolute figures a lot; the ratios, measured in the same minute,
much less. The load generator shares the machine: its own CPU is printed (at ~1 core it is the limit,
for the bare cases first).
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiohttp
import sqlalchemy as sa
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    HERE,
    HOST,
    clean_env,
    cpu_sample,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    logger,
    login,
    ms,
    percentile,
    run_async,
    scratch_dir,
    server_process,
    write_results,
)
from crm_common.db import Database
from crm_common.events.catalogue import SUBSCRIPTIONS

log = logger("compare")
NOTE_SUBJECT = "Customer created"
UNLIMITED = {"CRM_GATEWAY_RATE_LIMIT_ENABLED": "false", "CRM_LOG_LEVEL": "WARNING"}
SEARCH = "person1"
# How long a client waits after a 503 before its next request.
REFUSED_BACKOFF = 0.25
# (case, the case its ratio is taken against)
RATIOS = {
    "bare GET": None,
    "direct GET": "bare GET",
    "gateway GET": "direct GET",
    "gateway list q": "bare GET",
    "bare INSERT": None,
    "gateway POST": "bare INSERT",
    "opportunity GET": "bare GET",
    "opportunity board": "bare GET",
    "opportunity POST": "bare INSERT",
    "opportunity win": "bare INSERT",
    "ticket GET": "bare GET",
    "ticket POST": "bare INSERT",
}
CUSTOMER_CASES = ("bare GET", "direct GET", "gateway GET", "gateway list q", "bare INSERT", "gateway POST")
CASE_SETS = {"customer": CUSTOMER_CASES, "create": ("bare INSERT", "gateway POST")}
# Seeded through the API (batch create) before the run: what the GET cases read, and open
# opportunities for the win case (each opportunity POST adds one more).
SEEDED_OPPORTUNITIES = 800
SEEDED_TICKETS = 200
SEED_BATCH = 25


@dataclass
class Phase:
    ok: int = 0
    refused: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    client_cores: float | None = None
    server_cpu_s: float | None = None  # CPU time every server process used during the phase

    @property
    def cpu_ms_per_request(self) -> float | None:
        return round(1000 * self.server_cpu_s / self.ok, 2) if self.ok and self.server_cpu_s else None

    @property
    def rps(self) -> float:
        return self.ok / self.wall if self.wall else 0.0


@dataclass
class Target:
    """Where each case sends its requests, and what the drain watches."""

    bare: str
    gateway: str
    direct: str | None
    headers: dict
    customer_ids: list[str]
    bare_ids: list[str]
    queues: list[str] = field(default_factory=list)  # RabbitMQ queue names (distributed)
    amqp_url: str | None = None
    opportunity_ids: list[str] = field(default_factory=list)
    open_opportunities: list[str] = field(default_factory=list)  # for the win case, taken once each
    ticket_ids: list[str] = field(default_factory=list)
    servers: dict[str, int] = field(default_factory=dict)  # process name -> its listening port
    pids: list[Path] = field(default_factory=list)  # /proc entries of those processes


class Load:
    def __init__(self, session: aiohttp.ClientSession, target: Target, concurrency: int):
        self.session = session
        self.t = target
        self.concurrency = concurrency
        self.run = uuid.uuid4().hex[:8]
        self.n = 0
        self.created = 0

    def request(self, case: str) -> tuple[str, str, dict | None, dict, int] | None:
        """(method, url, json body, headers, the status that counts as served); None when the win
        case has no open opportunity left."""
        t = self.t
        api = f"{t.gateway}/api/v1"
        if case == "opportunity GET":
            return "GET", f"{api}/opportunities/{random.choice(t.opportunity_ids)}", None, t.headers, 200
        if case == "opportunity board":
            return "GET", f"{api}/opportunities/board", None, t.headers, 200
        if case == "ticket GET":
            return "GET", f"{api}/tickets/{random.choice(t.ticket_ids)}", None, t.headers, 200
        if case == "opportunity win":
            if not t.open_opportunities:
                return None
            return "POST", f"{api}/opportunities/{t.open_opportunities.pop()}/win", None, t.headers, 200
        if case == "opportunity POST":
            return "POST", f"{api}/opportunities", opportunity_body(t, self.n), t.headers, 201
        if case == "ticket POST":
            return "POST", f"{api}/tickets", ticket_body(t, self.n), t.headers, 201
        if case == "bare GET":
            return "GET", f"{t.bare}/customers/{random.choice(t.bare_ids)}", None, {}, 200
        if case == "direct GET":
            return "GET", f"{t.direct}/api/v1/customers/{random.choice(t.customer_ids)}", None, t.headers, 200
        if case == "gateway GET":
            return (
                "GET",
                f"{t.gateway}/api/v1/customers/{random.choice(t.customer_ids)}",
                None,
                t.headers,
                200,
            )
        if case == "gateway list q":
            return "GET", f"{t.gateway}/api/v1/customers?q={SEARCH}&pageSize=25", None, t.headers, 200
        self.n += 1
        body = {
            "firstName": "Load",
            "lastName": f"Run {self.n}",
            "email": f"c-{self.run}-{self.n}@example.com",
        }
        if case == "bare INSERT":
            return "POST", f"{t.bare}/customers", body, {}, 201
        return "POST", f"{t.gateway}/api/v1/customers", body, t.headers, 201

    async def phase(self, case: str, seconds: float) -> Phase:
        result = Phase()
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                request = self.request(case)
                if request is None:
                    result.errors.append("no open opportunity left")
                    await asyncio.sleep(REFUSED_BACKOFF)
                    continue
                method, url, body, headers, wanted = request
                t0 = time.perf_counter()
                try:
                    async with self.session.request(method, url, json=body, headers=headers) as r:
                        content = await r.read()
                        status = r.status
                except aiohttp.ClientError as exc:
                    result.errors.append(type(exc).__name__)
                    continue
                if status == wanted:
                    result.ok += 1
                    result.latencies.append(time.perf_counter() - t0)
                    if case == "opportunity POST":
                        self.t.open_opportunities.append(json.loads(content)["id"])
                elif status == 503:
                    if case == "opportunity win":  # not won: still open for another try
                        self.t.open_opportunities.append(url.rsplit("/", 2)[-2])
                    # Refused as overload (admission control): back off as a client should, or
                    # the loop measures how fast refusals come rather than what is served.
                    result.refused += 1
                    await asyncio.sleep(REFUSED_BACKOFF)
                else:
                    result.errors.append(str(status))

        before = cpu_sample(os.getpid())
        servers_before = servers_cpu(self.t)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        result.wall = time.perf_counter() - started
        after = cpu_sample(os.getpid())
        if before and after:
            result.client_cores = round((after[0] - before[0]) / result.wall, 2)
        servers_after = servers_cpu(self.t)
        if servers_before is not None and servers_after is not None:
            result.server_cpu_s = servers_after - servers_before
        if case == "gateway POST":
            self.created += result.ok
        return result

    async def notes(self) -> int:
        async with self.session.get(
            f"{self.t.gateway}/api/v1/activities",
            params={"pageSize": 1, "type": "NOTE"},
            headers=self.t.headers,
        ) as r:
            return (await r.json())["total"]

    async def queued(self, channel) -> int:
        total = 0
        for name in self.t.queues:
            queue = await channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count
        return total

    async def drain(self, expected_notes: int, timeout: float = 60) -> float | None:
        """Seconds until every consumer queue is empty and every note is there (None: not in time)."""
        started = time.perf_counter()
        connection = await aio_pika.connect(self.t.amqp_url) if self.t.amqp_url else None
        try:
            channel = await connection.channel() if connection else None
            while time.perf_counter() - started < timeout:
                queued = await self.queued(channel) if channel else 0
                if queued == 0 and await self.notes() >= expected_notes:
                    return time.perf_counter() - started
                await asyncio.sleep(0.05)
            return None
        finally:
            if connection:
                await connection.close()


# Opportunities and tickets are for the first few seeded customers: those were seeded without events,
# so pipeline-svc and ticket-svc look each one up from customer-svc once (crm_common.customer_lookup),
# during seeding; a real deployment knows its customers from their events.
REFERENCED_CUSTOMERS = 50


def opportunity_body(t: Target, n: int) -> dict:
    return {"title": f"Bench deal {n}", "customerId": random.choice(t.customer_ids[:REFERENCED_CUSTOMERS])}


def ticket_body(t: Target, n: int) -> dict:
    return {
        "subject": f"Bench ticket {n}",
        "description": "Seeded by bench/compare.py",
        "customerId": random.choice(t.customer_ids[:REFERENCED_CUSTOMERS]),
        "type": "QUESTION",
    }


def rss_mb(port: int) -> float | None:
    """Resident memory (MB) of the server process listening on `port`."""
    total = 0
    pids = server_pids(port)
    for entry in pids:
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1) if pids else None


def server_pids(port: int) -> list[Path]:
    """/proc entries of the server process listening on `port` (found by its command line, which
    names the port) and of its children (`crm up --workers N`'s serving workers)."""
    found = _named_port(port)
    for entry in list(found):
        try:
            children = (entry / "task" / entry.name / "children").read_text().split()
        except OSError:
            continue
        found.extend(Path("/proc") / pid for pid in children if Path("/proc") / pid not in found)
    return found


def _named_port(port: int) -> list[Path]:
    wanted = ["--port", str(port)]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(argv[i : i + 2] == wanted for i in range(len(argv) - 1)):
            found.append(entry)
    return found


def servers_cpu(target: Target) -> float | None:
    """CPU seconds used so far by every server process of the run (the CRM's and the bare app's):
    per request served, the figure the machine's other load moves least."""
    if not target.pids:
        return None
    total = 0.0
    for entry in target.pids:
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def memory(target: Target) -> dict[str, float | None]:
    return {name: rss_mb(port) for name, port in target.servers.items()}


async def seed_records(s: aiohttp.ClientSession, target: Target, cases: list[str]) -> None:
    """Opportunities and tickets through the API (batch create, 100 a request), when a case needs them."""
    api, headers = f"{target.gateway}/api/v1", target.headers

    async def batch(path: str, items: list[dict]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(items), SEED_BATCH):
            for attempt in range(5):
                async with s.post(
                    f"{api}/{path}/batch/create",
                    json={"items": items[start : start + SEED_BATCH]},
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=300),
                ) as r:
                    if r.status == 200:
                        answer = await r.json()
                        break
                    # A busy machine: 503 OVERLOADED or 504 (nothing written), try again.
                    if r.status not in (503, 504) or attempt == 4:
                        raise RuntimeError(f"seeding {path}: HTTP {r.status} {await r.text()}")
                await asyncio.sleep(1)
            failed = [x for x in answer["results"] if x["status"] != 201]
            if failed:
                raise RuntimeError(f"seeding {path}: {len(failed)} refused, e.g. {failed[0]}")
            ids += [x["id"] for x in answer["results"]]
        return ids

    if any(c.startswith("opportunity") for c in cases):
        log(f"seeding {SEEDED_OPPORTUNITIES} opportunities")
        ids = await batch("opportunities", [opportunity_body(target, n) for n in range(SEEDED_OPPORTUNITIES)])
        # Half are read (GET, board), half are won: a won one is read as often as an open one.
        target.opportunity_ids = ids[: len(ids) // 2]
        target.open_opportunities = ids[len(ids) // 2 :]
    if any(c.startswith("ticket") for c in cases):
        log(f"seeding {SEEDED_TICKETS} tickets")
        target.ticket_ids = await batch("tickets", [ticket_body(target, n) for n in range(SEEDED_TICKETS)])


async def measure(target: Target, args: argparse.Namespace) -> dict:
    cases = [
        c
        for c in RATIOS
        if (c != "direct GET" or target.direct) and (args.cases == "all" or c in CASE_SETS[args.cases])
    ]
    # Idle connections dropped before the servers' uvicorn drops them (5 s; phases leave them idle).
    connector = aiohttp.TCPConnector(limit=args.concurrency, keepalive_timeout=4)
    results: dict[str, list[Phase]] = {c: [] for c in cases}
    drains: list[float | None] = []
    rss: list[dict[str, float | None]] = []
    loadavg = os.getloadavg()[0]
    target.pids = [entry for port in target.servers.values() for entry in server_pids(port)]
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:
        await seed_records(s, target, cases)
        load = Load(s, target, args.concurrency)
        notes_before = await load.notes()
        log(f"warm-up: {args.warmup}s per case")
        for case in cases:
            await load.phase(case, args.warmup)
        if await load.drain(notes_before + load.created) is None:
            raise RuntimeError("the warm-up's events were not consumed within 60 s")
        rss.append(memory(target))
        for r in range(args.rounds):
            order = cases[r % len(cases) :] + cases[: r % len(cases)]
            log(f"round {r + 1}/{args.rounds}: {', '.join(order)}")
            for case in order:
                phase = await load.phase(case, args.seconds)
                results[case].append(phase)
                log(f"  {case}: {phase.rps:.1f}/s, {len(phase.errors)} errors")
                if case in ("gateway POST", "opportunity POST", "opportunity win", "ticket POST"):
                    drains.append(await load.drain(notes_before + load.created))
            rss.append(memory(target))
    loadavg = f"{loadavg:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    return {"cases": results, "drains": drains, "created": load.created, "loadavg": loadavg, "rss": rss}


def summary(measured: dict) -> dict:
    rows = {}
    for case, phases in measured["cases"].items():
        latencies = [x for p in phases for x in p.latencies]
        errors = [e for p in phases for e in p.errors]
        rows[case] = {
            "rps": round(statistics.median(p.rps for p in phases), 1),
            "rounds": [round(p.rps, 1) for p in phases],
            "p50_ms": ms(percentile(latencies, 50)),
            "p99_ms": ms(percentile(latencies, 99)),
            "refused": sum(p.refused for p in phases),
            "errors": len(errors),
            "error_samples": sorted(set(errors))[:5],
            "client_cores": max((p.client_cores or 0) for p in phases),
            "server_cpu_ms": median_or_none([p.cpu_ms_per_request for p in phases]),
        }
    for case, against in RATIOS.items():
        if against not in rows and against is not None:
            against = "bare GET"  # the embedded default has no direct GET
        if case in rows:
            base = rows.get(against) if against else None
            rows[case]["ratio"] = round(rows[case]["rps"] / base["rps"], 3) if base and base["rps"] else None
            rows[case]["against"] = against
    drains = measured["drains"]
    return {
        "rows": rows,
        "drains_s": [None if d is None else round(d, 2) for d in drains],
        "loadavg": measured["loadavg"],
        "rss_mb": measured["rss"],
    }


def median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def report(mode: str, s: dict, args: argparse.Namespace) -> str:
    lines = [
        f"{mode}: {args.rounds} rounds x {args.seconds:g}s per case, {args.concurrency} concurrent, "
        f"{args.customers} customers, load average {s['loadavg']}",
        "| case | req/s (median) | per round | p50 ms | p99 ms | refused | errors | ratio | server CPU ms/req "
        "| client cores |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case, r in s["rows"].items():
        ratio = (
            "1"
            if r["against"] is None
            else ("-" if r["ratio"] is None else f"{r['ratio']:.3f} of {r['against']}")
        )
        lines.append(
            f"| {case} | {r['rps']:.1f} | {' / '.join(f'{x:.0f}' for x in r['rounds'])} | {r['p50_ms']} | "
            f"{r['p99_ms']} | {r['refused']} | {r['errors']} | {ratio} | {r['server_cpu_ms']} | "
            f"{r['client_cores']} |"
        )
    drains = ", ".join("not drained in 60 s" if d is None else f"{d:.2f}" for d in s["drains_s"])
    lines.append(f"drain after each POST phase (queues empty, every note there), s: {drains}")
    if s["rss_mb"]:
        lines.append("resident memory (RSS) in MB after the warm-up, then after each round:")
        lines.append(
            "| process | "
            + " | ".join(["warm-up"] + [f"round {i}" for i in range(1, len(s["rss_mb"]))])
            + " |"
        )
        lines.append("|---" * len(s["rss_mb"]) + "|---|")
        for name in s["rss_mb"][0]:
            lines.append(f"| {name} | " + " | ".join(str(r.get(name)) for r in s["rss_mb"]) + " |")
    for case, r in s["rows"].items():
        if r["errors"]:
            lines.append(f"{case}: {r['errors']} errors, e.g. {r['error_samples']}")
    return "\n".join(lines)


# --- seeding ------------------------------------------------------------------------------------------


async def seed_customers(database_url: str, count: int) -> list[str]:
    """`count` customers written straight into customer-svc's tables (no events: the other services
    do not need them for these reads), numbered as the service numbers them, the counter moved on."""
    from customer_svc.models import Customer, CustomerNumberCounter

    db = Database(database_url, schema="customer")
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(count)]
    rows = [
        {
            "id": cid,
            "customer_number": f"CUST-{now.year}-{i:06d}",
            "type": "INDIVIDUAL",
            "first_name": "Bench",
            "last_name": f"Person{i}",
            "full_name": f"Bench Person{i}",
            "email": f"person{i}@seed.example",
            "status": "LEAD",
            "priority": "MEDIUM",
            "tags": [],
            "total_value": 0,
            "lifetime_value": 0,
            "value_currency": "USD",
            "value_totals": [],
            "custom_fields": {},
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        for i, cid in enumerate(ids, start=1)
    ]
    try:
        async with db.transaction() as session:
            for start in range(0, count, 2000):
                await session.execute(sa.insert(Customer.__table__), rows[start : start + 2000])
            counter = CustomerNumberCounter.__table__
            await session.execute(sa.delete(counter).where(counter.c.year == now.year))
            await session.execute(sa.insert(counter).values(year=now.year, last_value=count))
        if not db.is_sqlite:
            async with db.engine.begin() as conn:
                await conn.execute(sa.text("ANALYZE customers"))
    finally:
        await db.dispose()
    return [str(i) for i in ids]


async def seed_bare(session: aiohttp.ClientSession, bare: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        body = {
            "firstName": "Bare",
            "lastName": f"Person{i}",
            "email": f"bare{i}-{uuid.uuid4().hex[:6]}@x.example",
        }
        async with session.post(f"{bare}/customers", json=body) as r:
            ids.append((await r.json())["id"])
    return ids


async def prepare(
    gateway: str, bare: str, direct: str | None, password: str, customer_db: str, args
) -> Target:
    async with aiohttp.ClientSession() as s:
        token = await login(s, gateway, password)
        log(f"seeding {args.customers} customers and 200 bare rows")
        ids = await seed_customers(customer_db, args.customers)
        bare_ids = await seed_bare(s, bare, 200)
    return Target(bare, gateway, direct, {"Authorization": f"Bearer {token}"}, ids, bare_ids)


def bare_app(database_url: str, data_dir: Path):
    port = free_port()
    return f"http://{HOST}:{port}", server_process(
        [sys.executable, str(HERE / "baseline_app.py"), "--database-url", database_url, "--port", str(port)],
        env=clean_env(),
        log_file=data_dir / "logs" / "baseline.log",
        ready_url=f"http://{HOST}:{port}/readyz",
        name="baseline app",
    )


def run_embedded(args, data_dir: Path) -> dict:
    port = free_port()
    gateway = f"http://{HOST}:{port}"
    env = clean_env(
        **UNLIMITED,
        CRM_DATA_DIR=str(data_dir),
        CRM_HOST=HOST,
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=args.password,
    )
    env.update(dict(kv.partition("=")[::2] for kv in args.server_env))
    bare, bare_server = bare_app(f"sqlite:///{data_dir / 'baseline.db'}", data_dir)
    with (
        server_process(
            [sys.executable, "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
            env=env,
            log_file=data_dir / "logs" / "crm-up.log",
            ready_url=f"{gateway}/readyz",
            name="crm up",
        ),
        bare_server,
    ):
        target = run_async(
            prepare(gateway, bare, None, args.password, f"sqlite:///{data_dir / 'customer.db'}", args)
        )
        target.servers = {"crm up (every service)": port, "bare app": int(bare.rsplit(":", 1)[1])}
        return run_async(measure(target, args))


def run_distributed_mode(args, data_dir: Path) -> dict:
    from crm_gateway.distributed import run_distributed
    from crm_gateway.settings import SERVICES

    tag = uuid.uuid4().hex[:8]
    db_name, namespace = f"crm_compare_{tag}", f"compare-{tag}."
    database_url = run_async(create_database(args.database_url, db_name))
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CRM_")}
    base_port = free_port() + 1
    gateway_port = free_port()
    direct = f"http://{HOST}:{base_port + SERVICES.index('customer')}"
    try:
        bare, bare_server = bare_app(database_url, data_dir)
        with (
            run_distributed(
                database_url=database_url,
                amqp_url=args.amqp_url,
                data_dir=data_dir,
                host=HOST,
                gateway_port=gateway_port,
                service_base_port=base_port,
                events_namespace=namespace,
                extra_env={
                    **UNLIMITED,
                    "CRM_ADMIN_PASSWORD": args.password,
                    **dict(kv.partition("=")[::2] for kv in args.server_env),
                },
            ) as gateway,
            bare_server,
        ):
            target = run_async(prepare(gateway, bare, direct, args.password, database_url, args))
            target.amqp_url = args.amqp_url
            target.queues = [f"{namespace}{c}.events" for c in SUBSCRIPTIONS]
            target.servers = {
                "gateway": gateway_port,
                **{f"{name}-svc": base_port + i for i, name in enumerate(SERVICES)},
                "bare app": int(bare.rsplit(":", 1)[1]),
            }
            return run_async(measure(target, args))
    finally:
        os.environ.update(saved)
        run_async(drop_database(args.database_url, db_name, log))
        run_async(delete_broker_objects(args.amqp_url, namespace, log))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("embedded", "distributed", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per case per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per case before the rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--cases",
        choices=("all", *CASE_SETS),
        default="all",
        help="customer: the customer rows only; create: the bare INSERT and the customer POST",
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP)
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/compare-*.json")
    args = parser.parse_args(argv)
    args.password = "compare-Bench-pass-1"
    modes = ["embedded", "distributed"] if args.mode == "both" else [args.mode]
    out = {}
    for mode in modes:
        with scratch_dir(f"crm-compare-{mode}-", keep=args.keep, log=log) as data_dir:
            measured = (run_embedded if mode == "embedded" else run_distributed_mode)(args, data_dir)
        out[mode] = summary(measured)
        print(report(mode, out[mode], args), flush=True)
    if not args.no_json:
        path = write_results(
            {"args": {k: v for k, v in vars(args).items() if k != "password"}, **out}, "compare-"
        )
        log(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
