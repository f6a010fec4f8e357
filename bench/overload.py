"""Overload benchmark: open-loop load at multiples of the measured capacity.

For the chosen mode: start the CRM as it runs for real (rate limiting off), measure its capacity
with a closed loop (`--concurrency` clients for `--measure` seconds), then offer load open-loop,
each request sent at its scheduled time however many are still in flight, at 0.5x, 1x, 2x and 4x
that capacity for `--phase` seconds each. Per phase it prints served/s, refused/s (503 OVERLOADED),
failed/s (anything else), p50/p99 of served requests and of refusals, and for creates the
commit-to-effect lag (create answered -> its "Customer created" note visible in activity-svc) of a
sample, from the servers' clocks (customer createdAt -> note createdAt); after the last phase, how
long until every note is there (the queues drained). The default phases end with a 0.5x phase after
the 4x one ("0.5x after"): its lag against the first 0.5x figure is the recovery once overload stops.

    .venv/bin/python bench/overload.py [--mode embedded|distributed] [--kind create|get] [--phase 10]

Targets (issue 22): at 2x and 4x, served/s >= 90% of the 1x figure, served p99 < 1 s, refusals
answered in < 50 ms, queues drained and lag back to the 0.5x figure within 10 s of the end.
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    HOST,
    clean_env,
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
)

log = logger("overload")
NOTE_SUBJECT = "Customer created"
UNLIMITED = {"CRM_GATEWAY_RATE_LIMIT_ENABLED": "false", "CRM_LOG_LEVEL": "WARNING"}
# The load generator's own guard: past this many requests in flight it stops sending (and says so).
CLIENT_IN_FLIGHT_CAP = 2000
# How long a closed-loop client waits after a 503 OVERLOADED before its next request.
REFUSED_BACKOFF = 0.25


@dataclass
class Phase:
    factor: float
    offered_rps: float
    after_peak: bool = False  # a phase after the highest one: recovery once the overload stops
    sent: int = 0
    served: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_sent: int = 0
    created: list[tuple[str, str]] = field(default_factory=list)  # (customer id, its createdAt)
    lags: list[float] = field(default_factory=list)
    wall: float = 0.0


class Driver:
    def __init__(self, session: aiohttp.ClientSession, base: str, headers: dict, kind: str):
        self.session = session
        self.base = base
        self.headers = headers
        self.kind = kind
        self.run = uuid.uuid4().hex[:8]
        self.count = 0
        self.target_id: str | None = None

    async def prepare(self) -> None:
        if self.kind == "get":
            status, body = await self._create()
            assert status == 201, body
            self.target_id = body["id"]

    async def _create(self) -> tuple[int, dict]:
        self.count += 1
        n = self.count
        body = {"firstName": "Load", "lastName": f"Test {n}", "email": f"load-{self.run}-{n}@example.com"}
        async with self.session.post(f"{self.base}/api/v1/customers", json=body, headers=self.headers) as r:
            return r.status, await r.json(content_type=None)

    async def one(self) -> tuple[int, dict]:
        if self.kind == "create":
            return await self._create()
        async with self.session.get(
            f"{self.base}/api/v1/customers/{self.target_id}", headers=self.headers
        ) as r:
            return r.status, await r.json(content_type=None)

    async def closed_loop(self, concurrency: int, seconds: float) -> float:
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                status, _ = await self.one()
                if status in (200, 201):
                    done += 1
                elif status == 503:
                    # Refused as overload: back off as a client should, or the loop measures how
                    # fast refusals come rather than what is served.
                    await asyncio.sleep(REFUSED_BACKOFF)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)

    async def open_loop(self, phase: Phase, seconds: float) -> None:
        interval = 1.0 / phase.offered_rps
        in_flight: set[asyncio.Task] = set()
        started = time.perf_counter()

        async def send() -> None:
            t0 = time.perf_counter()
            try:
                status, body = await self.one()
            except Exception as exc:  # a connection error is a failure the client sees
                phase.failed.append(type(exc).__name__)
                return
            elapsed = time.perf_counter() - t0
            if status in (200, 201):
                phase.served.append(elapsed)
                if self.kind == "create":
                    phase.created.append((body["id"], body["createdAt"]))
            elif status == 503 and body.get("code") == "OVERLOADED":
                phase.refused.append(elapsed)
            else:
                phase.failed.append(f"{status} {body.get('code', '')}")

        i = 0
        while (due := started + i * interval) < started + seconds:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= CLIENT_IN_FLIGHT_CAP:
                phase.not_sent += 1
            else:
                task = asyncio.create_task(send())
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                phase.sent += 1
            i += 1
        await asyncio.gather(*in_flight)
        phase.wall = time.perf_counter() - started

    async def note_created_at(self, customer_id: str) -> str | None:
        async with self.session.get(
            f"{self.base}/api/v1/activities", params={"customerId": customer_id}, headers=self.headers
        ) as r:
            if r.status != 200:
                return None
            body = await r.json()
            return next((a["createdAt"] for a in body["items"] if a["subject"] == NOTE_SUBJECT), None)

    async def sample_lag(self, phase: Phase, sample: int, timeout: float = 30) -> None:
        """Commit-to-effect lag of a sample of the phase's creates, from the servers' clocks: the
        customer's createdAt -> its note's createdAt in activity-svc (read after the phase, so the
        reading adds nothing; a note missing after `timeout` counts as that late)."""
        step = max(1, len(phase.created) // sample)
        for customer_id, created_at in phase.created[::step][:sample]:
            waited = time.perf_counter()
            while (noted := await self.note_created_at(customer_id)) is None:
                if time.perf_counter() - waited > timeout:
                    break
                await asyncio.sleep(0.02)
            phase.lags.append(
                timeout if noted is None else (_instant(noted) - _instant(created_at)).total_seconds()
            )

    async def notes_total(self) -> int:
        async with self.session.get(
            f"{self.base}/api/v1/activities", params={"pageSize": 1, "type": "NOTE"}, headers=self.headers
        ) as r:
            return (await r.json())["total"]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rate(values: list, wall: float) -> float:
    return len(values) / wall if wall else 0.0


def row(phase: Phase) -> list[str]:
    def f(v, d=1):
        return "-" if v is None else f"{v:.{d}f}"

    return [
        f"{phase.factor:g}x" + (" after" if phase.after_peak else ""),
        f(phase.offered_rps),
        f(rate(phase.served, phase.wall)),
        f(rate(phase.refused, phase.wall)),
        f(rate(phase.failed, phase.wall)),
        f(ms(percentile(phase.served, 50))),
        f(ms(percentile(phase.served, 99))),
        f(ms(percentile(phase.refused, 50))),
        f(ms(percentile(phase.refused, 99))),
        f(ms(percentile(phase.lags, 50))),
        f(ms(percentile(phase.lags, 99))),
    ]


async def drive(base: str, password: str, args: argparse.Namespace) -> list[Phase]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        token = await login(session, base, password)
        driver = Driver(session, base, {"Authorization": f"Bearer {token}"}, args.kind)
        await driver.prepare()
        log(f"warm-up and capacity: closed loop, {args.concurrency} clients, {args.measure}s")
        await driver.closed_loop(args.concurrency, min(3.0, args.measure))
        capacity = await driver.closed_loop(args.concurrency, args.measure)
        log(f"capacity: {capacity:.1f} {args.kind}s/s")
        phases = []
        peak = args.factors.index(max(args.factors))
        for i, factor in enumerate(args.factors):
            phase = Phase(factor, capacity * factor, after_peak=i > peak)
            log(f"{factor:g}x: offering {phase.offered_rps:.1f}/s open-loop for {args.phase}s")
            await driver.open_loop(phase, args.phase)
            if args.kind == "create":
                await driver.sample_lag(phase, args.lag_sample)
            phases.append(phase)
            if phase.failed:
                log(f"  {len(phase.failed)} failures, e.g. {sorted(set(phase.failed))[:5]}")
            if phase.not_sent:
                log(
                    f"  the load generator held back {phase.not_sent} requests (over {CLIENT_IN_FLIGHT_CAP} in flight)"
                )
        if args.kind == "create":
            created = sum(len(p.created) for p in phases)
            started = time.perf_counter()
            baseline = None
            while True:
                total = await driver.notes_total()
                if baseline is None:
                    baseline = total - created  # notes of the warm-up and capacity runs
                if total - baseline >= created or time.perf_counter() - started > 60:
                    break
                await asyncio.sleep(0.1)
            args.drain_seconds = time.perf_counter() - started
            args.capacity = capacity
        else:
            args.capacity = capacity
        return phases


def report(args: argparse.Namespace, phases: list[Phase]) -> str:
    head = [
        "load",
        "offered/s",
        "served/s",
        "refused/s",
        "failed/s",
        "served p50 ms",
        "served p99 ms",
        "refusal p50 ms",
        "refusal p99 ms",
        "lag p50 ms",
        "lag p99 ms",
    ]
    lines = [
        f"overload: {args.mode}, {args.kind}s, capacity {args.capacity:.1f}/s (closed loop, c={args.concurrency})",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    lines += ["| " + " | ".join(row(p)) + " |" for p in phases]
    one = next((p for p in phases if p.factor == 1 and not p.after_peak), None)
    if one is not None:
        base = rate(one.served, one.wall)
        for p in phases:
            if p.factor > 1 and base and not p.after_peak:
                lines.append(f"served at {p.factor:g}x: {100 * rate(p.served, p.wall) / base:.0f}% of 1x")
    if args.kind == "create":
        lines.append(f"every note present {args.drain_seconds:.1f} s after the last phase")
    return "\n".join(lines)


def run_embedded(args: argparse.Namespace, data_dir: Path) -> list[Phase]:
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = clean_env(
        **UNLIMITED,
        CRM_DATA_DIR=str(data_dir),
        CRM_HOST=HOST,
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=args.password,
    )
    env.update(dict(kv.partition("=")[::2] for kv in args.server_env))
    with server_process(
        [sys.executable, "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
        env=env,
        log_file=data_dir / "logs" / "crm-up.log",
        ready_url=f"{base}/readyz",
        name="crm up",
    ):
        return run_async(drive(base, args.password, args))


def run_distributed_mode(args: argparse.Namespace, data_dir: Path) -> list[Phase]:
    from crm_gateway.distributed import run_distributed

    tag = uuid.uuid4().hex[:8]
    db_name, namespace = f"crm_overload_{tag}", f"overload-{tag}."
    database_url = run_async(create_database(args.database_url, db_name))
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CRM_")}
    try:
        with run_distributed(
            database_url=database_url,
            amqp_url=args.amqp_url,
            data_dir=data_dir,
            host=HOST,
            gateway_port=free_port(),
            service_base_port=free_port() + 1,
            events_namespace=namespace,
            extra_env={
                **UNLIMITED,
                "CRM_ADMIN_PASSWORD": args.password,
                **dict(kv.partition("=")[::2] for kv in args.server_env),
            },
        ) as base:
            return run_async(drive(base, args.password, args))
    finally:
        os.environ.update(saved)
        run_async(drop_database(args.database_url, db_name, log))
        run_async(delete_broker_objects(args.amqp_url, namespace, log))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("embedded", "distributed"), default="embedded")
    parser.add_argument("--kind", choices=("create", "get"), default="create")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--measure", type=float, default=8.0, help="seconds of the closed-loop capacity run")
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of each open-loop phase")
    # The last 0.5x comes after the overload: how soon the lag is back to the first 0.5x figure.
    parser.add_argument("--factors", type=float, nargs="+", default=[0.5, 1, 2, 4, 0.5])
    parser.add_argument("--lag-sample", type=int, default=20)
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP)
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    args.password = "overload-Bench-pass-1"
    with scratch_dir("crm-overload-", keep=args.keep, log=log) as data_dir:
        phases = (
            run_embedded(args, data_dir) if args.mode == "embedded" else run_distributed_mode(args, data_dir)
        )
    print(report(args, phases), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
