"""Benchmark of the customer -> activity slice, in the embedded and the distributed mode.

For each mode, on a fresh data dir (and, distributed, a fresh Postgres database and RabbitMQ
namespace): start the CRM as it is run for real, create `--count` customers through the gateway at
`--concurrency` after a warm-up, watch a sample of them until the activity note "Customer created"
is visible, then do the same load against a bare FastAPI one-INSERT app (bench/baseline_app.py) on
the same driver. Servers run in their own processes; this script is the load generator.

    .venv/bin/python bench/slice.py [--mode embedded|distributed|both] [--count 2000] [--concurrency 32]

See bench/README.md for what every figure means.
"""

import argparse
import asyncio
import json
import math
import os
import platform
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from _support import (
    CLOCK_TICKS,
    DEFAULT_AMQP,
    DEFAULT_PG,
    HERE,
    HOST,
    REPO,
    clean_env,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    logger,
    login,
    machine_cpu_seconds,
    ms,
    percentile,
    run_async,
    scratch_dir,
    server_process,
    write_results,
)

NOTE_SUBJECT = "Customer created"

log = logger("bench")


# --- statistics -----------------------------------------------------------------------------------


def lag_ms(value: float | None, timeout: float) -> float | str | None:
    """A lag in ms; a note never seen (inf) is shown as more than the watchers' timeout."""
    if value is not None and math.isinf(value):
        return f">{timeout * 1000:.0f}"
    return ms(value)


# --- CPU accounting from /proc (Linux) ------------------------------------------------------------


def _label(pid: int, ppid: int, comm: str, cmdline: list[str]) -> str | None:
    me = os.getpid()
    if pid == me:
        return "load generator (this script)"
    if ppid == me:
        if any(part.endswith("baseline_app.py") for part in cmdline):
            return "baseline app"
        if "crm_gateway.cli" in cmdline:
            if "up" in cmdline:
                return "crm up (all in one)"
            if "serve" in cmdline:
                name = cmdline[cmdline.index("serve") + 1]
                return "gateway" if name == "gateway" else f"{name}-svc"
        return "other child"
    if comm == "postgres":
        return "postgres (all backends)"
    if comm in ("beam.smp", "erl_child_setup", "epmd") or any("rabbit" in part for part in cmdline[:2]):
        return "rabbitmq"
    return None


def cpu_snapshot() -> dict:
    """CPU seconds (user+system) used so far per process group of interest, the machine's busy and
    total CPU seconds, and how many processes the machine has started since boot."""
    groups: dict[str, float] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return {"groups": groups, "machine_busy": None, "machine_total": None, "forks": None}
    me = os.getpid()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        comm = stat[stat.find("(") + 1 : stat.rfind(")")]
        rest = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry.name)
        label = _label(pid, int(rest[1]), comm, cmdline)
        if label is None:
            continue
        ticks = int(rest[11]) + int(rest[12])
        if pid != me:
            # Plus the children it reaped: Postgres backends that came and went (pool overflow
            # connections) are charged to the postmaster. Not for this script, which reaps servers.
            ticks += int(rest[13]) + int(rest[14])
        groups[label] = groups.get(label, 0.0) + ticks / CLOCK_TICKS
    machine_busy, machine_total = machine_cpu_seconds()
    forks = next(
        (
            int(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("processes ")
        ),
        None,
    )
    return {"groups": groups, "machine_busy": machine_busy, "machine_total": machine_total, "forks": forks}


def cpu_usage(before: dict, after: dict, wall: float) -> dict:
    """Cores used per group over the window (1.0 = one core busy the whole time)."""
    usage = {
        label: round((after["groups"].get(label, 0.0) - before["groups"].get(label, 0.0)) / wall, 2)
        for label in after["groups"]
    }
    usage = dict(sorted(usage.items(), key=lambda kv: -kv[1]))
    machine = None
    if before["machine_total"] is not None:
        elapsed = after["machine_total"] - before["machine_total"]
        if elapsed > 0:
            busy = (after["machine_busy"] - before["machine_busy"]) / elapsed
            machine = round(busy * (os.cpu_count() or 1), 2)
            # Other jobs on the machine, and kernel work no process is charged with.
            usage["everything else"] = round(max(0.0, machine - sum(usage.values())), 2)
    forks = None if before["forks"] is None else after["forks"] - before["forks"]
    return {
        "cores_used": usage,
        "machine_cores_busy": machine,
        "machine_cores": os.cpu_count(),
        "processes_started": forks,
    }


# --- ports ------------------------------------------------------------------------------------------


def free_port_range(n: int) -> int:
    """A base port with n consecutive free ports after it."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(40000)
        try:
            for port in range(base, base + n):
                with socket.socket() as s:
                    s.bind((HOST, port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {n} consecutive free ports found")


# --- the load generator ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    target: str
    requests: int
    ok: int
    errors: int
    error_samples: list[str]
    wall_s: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    cpu: dict = field(default_factory=dict)
    # Only for the CRM (lag watchers and the drain check):
    lag: dict | None = None
    drain: dict | None = None


@dataclass
class Lag:
    # create response received -> first poll response that shows the note received (None: not seen)
    upper: float | None
    # the span in which the note became visible: last empty poll sent -> the poll that saw it received
    window: float | None
    polls: int
    error: str | None = None


class Load:
    def __init__(self, args: argparse.Namespace, *, run_tag: str, pg_database: str | None = None):
        self.args = args
        self.run_tag = run_tag
        self.timeout = aiohttp.ClientTimeout(total=args.request_timeout)
        # Distributed: count the Postgres sessions opened in the run's database (pool churn).
        self.pg_database = pg_database

    @asynccontextmanager
    async def pg_sessions(self) -> AsyncIterator[Callable[[], Awaitable[int | None]]]:
        """A function returning pg_stat_database.sessions of the run's database (None: not distributed).
        Postgres publishes the counter with up to ~1 s delay, so deltas are approximate."""
        if self.pg_database is None:

            async def none() -> None:
                return None

            yield none
            return
        conn = await asyncpg.connect(self.args.database_url)
        try:

            async def sessions() -> int | None:
                query = "SELECT sessions FROM pg_stat_database WHERE datname = $1"
                return await conn.fetchval(query, self.pg_database)

            yield sessions
        finally:
            await conn.close()

    @staticmethod
    def _sessions_opened(cpu: dict, before: int | None, after: int | None) -> dict:
        if before is not None and after is not None:
            cpu["postgres_sessions_opened"] = after - before
        return cpu

    def body(self, phase: str, i: int) -> dict:
        return {
            "firstName": "Bench",
            "lastName": f"{phase} {i}",
            "email": f"bench-{self.run_tag}-{phase}-{i}@example.com",
        }

    async def drive(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict,
        phase: str,
        n: int,
        on_created: Callable[[int, str, float], None] | None = None,
    ) -> tuple[list[float], list[str]]:
        """n POSTs from `concurrency` workers sharing one counter; latencies of the 201s, and errors."""
        latencies: list[float] = []
        errors: list[str] = []
        numbers = iter(range(n))

        async def worker() -> None:
            for i in numbers:
                started = time.perf_counter()
                try:
                    async with session.post(url, json=self.body(phase, i), headers=headers) as resp:
                        payload = await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                done = time.perf_counter()
                if status != 201:
                    errors.append(f"HTTP {status}: {payload[:200].decode(errors='replace')}")
                    continue
                latencies.append(done - started)
                if on_created is not None:
                    on_created(i, json.loads(payload)["id"], done)

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
        return latencies, errors

    async def note_total(self, session: aiohttp.ClientSession, base: str, headers: dict) -> int:
        params = {"type": "NOTE", "pageSize": "1"}
        async with session.get(f"{base}/api/v1/activities", params=params, headers=headers) as resp:
            resp.raise_for_status()
            return (await resp.json())["total"]

    async def wait_notes(
        self, session: aiohttp.ClientSession, base: str, headers: dict, expected: int, timeout: float
    ) -> tuple[int, float]:
        """Poll until `expected` notes exist (bounded); returns (notes seen, seconds waited)."""
        started = time.perf_counter()
        seen = 0
        while True:
            seen = await self.note_total(session, base, headers)
            waited = time.perf_counter() - started
            if seen >= expected or waited > timeout:
                return seen, waited
            await asyncio.sleep(0.05)

    async def watch(
        self, session: aiohttp.ClientSession, base: str, headers: dict, customer_id: str, created: float
    ) -> Lag:
        """Poll GET /activities?customerId= every poll_interval until the note shows (bounded)."""
        url = f"{base}/api/v1/activities"
        params = {"customerId": customer_id}
        last_empty_sent = created
        polls = 0
        deadline = created + self.args.lag_timeout
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                async with session.get(url, params=params, headers=headers) as resp:
                    status = resp.status
                    payload = await resp.json() if status == 200 else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Lag(None, None, polls, f"{type(exc).__name__}: {exc}")
            received = time.perf_counter()
            polls += 1
            if status != 200:
                return Lag(None, None, polls, f"HTTP {status}")
            if any(item.get("subject") == NOTE_SUBJECT for item in payload["items"]):
                return Lag(received - created, received - last_empty_sent, polls)
            last_empty_sent = sent
            await asyncio.sleep(self.args.poll_interval)
        return Lag(None, None, polls, f"not seen within {self.args.lag_timeout:g} s")

    async def crm(self, base: str, password: str) -> LoadResult:
        args = self.args
        url = f"{base}/api/v1/customers"
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        # The watchers share their own few connections: they never hold a create's slot, and their
        # polling cannot grow with the number of notes pending (it would starve the servers it watches).
        watch_connector = aiohttp.TCPConnector(limit=args.watch_connections)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session,
            aiohttp.ClientSession(connector=watch_connector, timeout=self.timeout) as watch_session,
        ):
            headers = {"Authorization": f"Bearer {await login(session, base, password)}"}
            log(f"  warm-up: {args.warmup} creates")
            _, warm_errors = await self.drive(session, url, headers, "warmup", args.warmup)
            if warm_errors:
                raise RuntimeError(f"warm-up failed: {warm_errors[:3]}")
            # Start the measured phase with an empty event pipeline.
            seen, _ = await self.wait_notes(session, base, headers, args.warmup, args.drain_timeout)
            if seen < args.warmup:
                raise RuntimeError(f"warm-up notes: {seen} of {args.warmup} after {args.drain_timeout}s")

            watchers: list[asyncio.Task] = []

            def on_created(i: int, customer_id: str, done: float) -> None:
                if args.lag_sample and i % args.lag_sample == 0:
                    watchers.append(
                        asyncio.create_task(self.watch(watch_session, base, headers, customer_id, done))
                    )

            log(f"  measured: {args.count} creates at concurrency {args.concurrency}")
            async with self.pg_sessions() as pg_sessions:
                sessions_before = await pg_sessions()
                cpu_before = cpu_snapshot()
                started = time.perf_counter()
                latencies, errors = await self.drive(session, url, headers, "run", args.count, on_created)
                finished = time.perf_counter()
                cpu_after = cpu_snapshot()
                sessions_after = await pg_sessions()
            wall = finished - started
            lags = await asyncio.gather(*watchers)
            seen, _ = await self.wait_notes(
                session, base, headers, args.warmup + len(latencies), args.drain_timeout
            )
            drain_s = time.perf_counter() - finished if seen >= args.warmup + len(latencies) else None

        failed = [x for x in lags if x.upper is None]
        # A note never seen counts as infinitely late: percentiles over the seen ones only would
        # flatter exactly the runs where the event pipeline falls behind.
        uppers = [math.inf if x.upper is None else x.upper for x in lags]
        windows = [x.window for x in lags if x.window is not None]
        lag = {
            "sampled": len(lags),
            "seen": len(lags) - len(failed),
            "failed": len(failed),
            "failures": sorted({x.error for x in failed})[:5],
            "p50_ms": lag_ms(percentile(uppers, 50), args.lag_timeout),
            "p99_ms": lag_ms(percentile(uppers, 99), args.lag_timeout),
            "max_ms": lag_ms(max(uppers, default=None), args.lag_timeout),
            "window_p50_ms": ms(percentile(windows, 50)),
            "window_p99_ms": ms(percentile(windows, 99)),
            "polls": sum(x.polls for x in lags),
            "poll_interval_ms": args.poll_interval * 1000,
        }
        if not args.lag_sample:
            lag = None
        drain = {
            "notes_expected": args.warmup + len(latencies),
            "notes_seen": seen,
            "all_seen_after_last_create_s": None if drain_s is None else round(drain_s, 3),
        }
        return self._result(
            "crm",
            latencies,
            errors,
            wall,
            self._sessions_opened(cpu_usage(cpu_before, cpu_after, wall), sessions_before, sessions_after),
            lag=lag,
            drain=drain,
        )

    async def baseline(self, base: str) -> LoadResult:
        args = self.args
        url = f"{base}/customers"
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        # The same request bytes as the CRM's (the header is ignored by the baseline).
        headers = {"Authorization": "Bearer " + "x" * 400}
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout) as session:
            log(f"  warm-up: {args.warmup} inserts")
            _, warm_errors = await self.drive(session, url, headers, "warmup", args.warmup)
            if warm_errors:
                raise RuntimeError(f"baseline warm-up failed: {warm_errors[:3]}")
            log(f"  measured: {args.count} inserts at concurrency {args.concurrency}")
            async with self.pg_sessions() as pg_sessions:
                sessions_before = await pg_sessions()
                cpu_before = cpu_snapshot()
                started = time.perf_counter()
                latencies, errors = await self.drive(session, url, headers, "run", args.count)
                wall = time.perf_counter() - started
                cpu_after = cpu_snapshot()
                sessions_after = await pg_sessions()
        cpu = self._sessions_opened(cpu_usage(cpu_before, cpu_after, wall), sessions_before, sessions_after)
        return self._result("baseline", latencies, errors, wall, cpu)

    def _result(self, target, latencies, errors, wall, cpu, **extra) -> LoadResult:
        return LoadResult(
            target=target,
            requests=len(latencies) + len(errors),
            ok=len(latencies),
            errors=len(errors),
            error_samples=errors[:5],
            wall_s=round(wall, 3),
            rps=round(len(latencies) / wall, 1) if wall > 0 else 0.0,
            p50_ms=ms(percentile(latencies, 50)),
            p99_ms=ms(percentile(latencies, 99)),
            max_ms=ms(max(latencies, default=None)),
            cpu=cpu,
            **extra,
        )


# --- the two modes --------------------------------------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    crm: LoadResult
    baseline: LoadResult
    details: dict

    @property
    def ratio(self) -> float | None:
        return round(self.crm.rps / self.baseline.rps, 3) if self.baseline.rps else None


# One client drives all the load, so the gateway's per-credential rate limit is off: this measures
# capacity, not the limit.
UNLIMITED = {"CRM_GATEWAY_RATE_LIMIT_ENABLED": "false"}


def server_env(args: argparse.Namespace, **values: str) -> dict[str, str]:
    env = clean_env(**UNLIMITED, **values)
    for item in args.server_env:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def run_embedded(args: argparse.Namespace, data_dir: Path, password: str, tag: str) -> ModeResult:
    port = free_port()
    env = server_env(
        args,
        CRM_DATA_DIR=str(data_dir),
        CRM_HOST=HOST,
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=password,
    )
    base = f"http://{HOST}:{port}"
    load = Load(args, run_tag=tag)
    log(f"embedded: starting `crm up` on {base}, data in {data_dir}")
    with server_process(
        [sys.executable, "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
        env=env,
        log_file=data_dir / "logs" / "crm-up.log",
        ready_url=f"{base}/readyz",
        name="crm up",
        timeout=args.startup_timeout,
    ):
        crm = run_async(load.crm(base, password))
    baseline = run_baseline(args, load, f"sqlite:///{data_dir / 'baseline.db'}", data_dir)
    details = {
        "data_dir": str(data_dir),
        "crm_database": "SQLite files (aiosqlite, WAL) under the data dir, in-process event bus",
        "baseline_database": "SQLite file baseline.db (SQLAlchemy Core over aiosqlite, WAL)",
    }
    return ModeResult("embedded", crm, baseline, details)


def run_baseline(args: argparse.Namespace, load: Load, database_url: str, data_dir: Path) -> LoadResult:
    port = free_port()
    base = f"http://{HOST}:{port}"
    log(f"  baseline: bench/baseline_app.py on {base} ({database_url.split(':')[0]})")
    with server_process(
        [
            sys.executable,
            str(HERE / "baseline_app.py"),
            "--database-url",
            database_url,
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        env=server_env(args),
        log_file=data_dir / "logs" / "baseline.log",
        ready_url=f"{base}/readyz",
        name="baseline app",
        timeout=args.startup_timeout,
    ):
        return run_async(load.baseline(base))


def run_distributed_mode(args: argparse.Namespace, data_dir: Path, password: str, tag: str) -> ModeResult:
    from crm_gateway.distributed import run_distributed

    db_name = f"crm_bench_{tag}"
    namespace = f"bench-{tag}."
    load = Load(args, run_tag=tag, pg_database=db_name)
    log(f"distributed: creating database {db_name}, events namespace {namespace!r}")
    database_url = run_async(create_database(args.database_url, db_name))
    try:
        gateway_port = free_port()
        service_base = free_port_range(5)
        saved_env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CRM_")}
        try:
            log(f"distributed: starting gateway on {gateway_port}, services on {service_base}..")
            with run_distributed(
                database_url=database_url,
                amqp_url=args.amqp_url,
                data_dir=data_dir,
                host=HOST,
                gateway_port=gateway_port,
                service_base_port=service_base,
                events_namespace=namespace,
                extra_env={
                    **UNLIMITED,
                    "CRM_ADMIN_PASSWORD": password,
                    **dict(kv.partition("=")[::2] for kv in args.server_env),
                },
                startup_timeout=args.startup_timeout,
            ) as base:
                crm = run_async(load.crm(base, password))
        finally:
            os.environ.update(saved_env)
        baseline = run_baseline(args, load, database_url, data_dir)
    finally:
        log(f"distributed: dropping database {db_name}")
        run_async(drop_database(args.database_url, db_name, log))
        log(f"distributed: deleting queues and exchanges of {namespace!r}")
        run_async(delete_broker_objects(args.amqp_url, namespace, log))
    details = {
        "data_dir": str(data_dir),
        "database": f"{db_name} (dropped)",
        "events_namespace": f"{namespace} (deleted)",
        "crm_database": "Postgres (asyncpg), one schema per service; RabbitMQ events",
        "baseline_database": "Postgres table baseline_customers (SQLAlchemy Core over asyncpg, pool 10+10)",
    }
    return ModeResult("distributed", crm, baseline, details)


# --- output ---------------------------------------------------------------------------------------


def fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}"


def table(results: list[ModeResult]) -> str:
    headers = [
        "mode",
        "creates/s",
        "p50 ms",
        "p99 ms",
        "lag p50 ms",
        "lag p99 ms",
        "baseline/s",
        "ratio",
    ]
    rows = [
        [
            r.mode,
            fmt(r.crm.rps),
            fmt(r.crm.p50_ms),
            fmt(r.crm.p99_ms),
            fmt(r.crm.lag["p50_ms"] if r.crm.lag else None),
            fmt(r.crm.lag["p99_ms"] if r.crm.lag else None),
            fmt(r.baseline.rps),
            fmt(r.ratio, 2),
        ]
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def report(args: argparse.Namespace, results: list[ModeResult]) -> str:
    sampling = (
        f"the note of every {args.lag_sample}th customer watched"
        if args.lag_sample
        else "no lag watchers (--lag-sample 0)"
    )
    lines = [
        "",
        f"Customer -> activity slice: {args.count} creates at concurrency {args.concurrency} after "
        f"{args.warmup} warm-up creates; {sampling} ({os.cpu_count()} cores, Python "
        f"{platform.python_version()})",
        "",
        table(results),
        "",
        "creates/s   successful POST /api/v1/customers (201) per second of the measured phase",
        "p50/p99     create latency: request sent -> response read, as the client sees it",
        "lag         create response received -> the first GET /api/v1/activities?customerId= response",
        "            that contains the note received. Watchers poll, sleep "
        f"{args.poll_interval * 1000:g} ms, poll again, sharing",
        f"            {args.watch_connections} connections, so each lag is an upper bound: "
        "the note appeared within the last poll window",
        "            (its width, the resolution, is printed per mode below); a note never seen counts as "
        f"> {args.lag_timeout:g} s",
        "baseline/s  the same load against bench/baseline_app.py: one INSERT per request, same driver",
        "ratio       creates/s divided by baseline/s",
    ]
    for r in results:
        lag, drain = r.crm.lag or {}, r.crm.drain or {}
        lines += [
            "",
            f"{r.mode}:",
            f"  crm       ok {r.crm.ok}/{r.crm.requests}, errors {r.crm.errors}, wall {r.crm.wall_s} s, "
            f"max {fmt(r.crm.max_ms)} ms"
            + (f"; errors e.g. {r.crm.error_samples[:2]}" if r.crm.errors else ""),
            (
                f"  lag       {lag['seen']} of {lag['sampled']} watched notes seen"
                + (f" ({lag['failed']} not: {lag['failures']})" if lag["failed"] else "")
                + f", max {fmt(lag['max_ms'])} ms; {lag['polls']} polls sent by the watchers; "
                f"resolution (the window the note appeared in) p50 {fmt(lag['window_p50_ms'])} / "
                f"p99 {fmt(lag['window_p99_ms'])} ms"
                if lag
                else "  lag       not measured (--lag-sample 0)"
            ),
            f"  drain     {drain.get('notes_seen')} of {drain.get('notes_expected')} notes recorded; "
            f"all visible {fmt(drain.get('all_seen_after_last_create_s'), 3)} s after the last create response",
            f"  baseline  ok {r.baseline.ok}/{r.baseline.requests}, errors {r.baseline.errors}, "
            f"p50 {fmt(r.baseline.p50_ms)} ms, p99 {fmt(r.baseline.p99_ms)} ms, wall {r.baseline.wall_s} s"
            + (f"; errors e.g. {r.baseline.error_samples[:2]}" if r.baseline.errors else ""),
            f"  cpu crm   {cpu_line(r.crm.cpu)}",
            f"  cpu base  {cpu_line(r.baseline.cpu)}",
        ]
        others = max(
            (x.cpu.get("cores_used", {}).get("everything else", 0.0) for x in (r.crm, r.baseline)),
            default=0.0,
        )
        if others >= 0.25:
            lines.append(
                f"  WARNING   other processes used up to {others:.2f} cores during this run: "
                "its figures are not representative of this machine"
            )
    return "\n".join(lines)


def cpu_line(cpu: dict) -> str:
    if not cpu:
        return "-"
    parts = [f"{label} {cores:.2f}" for label, cores in cpu["cores_used"].items() if cores >= 0.01]
    machine = cpu.get("machine_cores_busy")
    head = (
        f"machine {fmt(machine, 2)} of {cpu.get('machine_cores')} cores busy; " if machine is not None else ""
    )
    tail = ""
    if cpu.get("processes_started") is not None:
        tail += f"; {cpu['processes_started']} processes started"
    if cpu.get("postgres_sessions_opened") is not None:
        tail += f", {cpu['postgres_sessions_opened']} Postgres sessions opened"
    return head + ", ".join(parts) + tail


def write_json(args: argparse.Namespace, results: list[ModeResult], started: datetime) -> Path:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    document = {
        "started": started.isoformat(),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "args": {k: v for k, v in vars(args).items() if k not in ("database_url", "amqp_url")},
        "results": [
            {
                "mode": r.mode,
                "ratio": r.ratio,
                "crm": asdict(r.crm),
                "baseline": asdict(r.baseline),
                "details": r.details,
            }
            for r in results
        ],
    }
    return write_results(document, "", started)


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark customer create -> activity note, embedded and distributed, against a bare baseline."
    )
    parser.add_argument("--mode", choices=("embedded", "distributed", "both"), default="both")
    parser.add_argument("--count", type=int, default=2000, help="measured creates per run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured creates first (default 200)")
    parser.add_argument(
        "--lag-sample", type=int, default=10, help="watch every Nth customer's note; 0: no lag (default 10)"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.005, help="seconds between a watcher's polls (default 0.005)"
    )
    parser.add_argument(
        "--watch-connections",
        type=int,
        default=4,
        help="connections the watchers share, i.e. at most this many polls in flight (default 4)",
    )
    parser.add_argument("--lag-timeout", type=float, default=60.0, help="give up on a note after this (s)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="wait this long for all notes (s)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="per request (s)")
    parser.add_argument("--startup-timeout", type=float, default=120.0, help="servers must be ready in (s)")
    parser.add_argument("--database-url", default=DEFAULT_PG, help="Postgres server (a database is created)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP, help="RabbitMQ (a namespace is used and deleted)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the servers (repeatable), e.g. CRM_LOG_LEVEL=WARNING",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the data dirs (and logs)")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/<time>.json")
    args = parser.parse_args(argv)
    if min(args.count, args.concurrency, args.watch_connections) < 1 or min(args.warmup, args.lag_sample) < 0:
        parser.error("--count, --concurrency, --watch-connections must be >= 1; --warmup, --lag-sample >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    modes = ("embedded", "distributed") if args.mode == "both" else (args.mode,)
    runners = {"embedded": run_embedded, "distributed": run_distributed_mode}
    results = []
    for mode in modes:
        tag = secrets.token_hex(5)
        password = secrets.token_urlsafe(16)
        with scratch_dir(f"crm-bench-{mode}-", keep=args.keep_data, log=log) as data_dir:
            results.append(runners[mode](args, data_dir, password, tag))
    print(report(args, results), flush=True)
    if not args.no_json:
        print(f"\nJSON: {write_json(args, results, started)}", flush=True)
    failed = any(r.crm.errors or r.baseline.errors or (r.crm.lag or {}).get("failed") for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
