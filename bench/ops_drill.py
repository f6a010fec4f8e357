"""Operations drills against the distributed mode: what an operator sees when a service is kill -9'd
mid-write, and when the broker is away for a minute (docs/operations.md, the two runbooks).

Starts one process per service plus the gateway (`crm serve <name>`, as `make distributed` and
docker-compose do) on a fresh Postgres database and a fresh events namespace on the broker, both
removed afterwards, then runs either drill or both:

* `kill`: a steady stream of customer creates (each with its own Idempotency-Key) through the
  gateway; customer-svc is killed with SIGKILL mid-stream and started again a few seconds later (as
  an orchestrator would). Prints the gateway's /readyz and the metric lines that changed, the
  answers clients got by status and code, the time to ready, then retries every key that got no 2xx
  with the same key and body: duplicates, lost writes, time until the outbox drained and every
  customer's note arrived in activity-svc, and `crm events dlq list`.
* `outage`: the same stream while the broker is stopped for --outage-seconds (60), with the broker
  commands given as options (`rabbitmqctl stop_app` / `start_app` by default). Prints readiness, the
  outbox backlog and relay metrics during the outage, whether writes (and an opportunity for a
  customer made during it) were accepted, then the time until every outbox drained and every
  consumer caught up, and `crm events dlq list`. The broker is started again whatever happens, and
  the script waits for its port before it exits.

The broker may be shared: --wait-before-outage CMD is a shell command polled (every 10 s) until it
exits 0 before the broker is stopped, e.g. "grep -q '^rc ' /tmp/ci.log" to let a CI run finish.

    .venv/bin/python bench/ops_drill.py --drill both
"""

import argparse
import asyncio
import collections
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import _support as s
import aiohttp
import asyncpg
from crm_gateway.distributed import distributed_env, serve_argv, service_ports
from crm_gateway.settings import SERVICES
from prometheus_client.parser import text_string_to_metric_families

log = s.logger("ops_drill")
ADMIN_PASSWORD = "drill-Secret-pass-1"
# The metric lines an operator's dashboard shows for these drills (docs/operations.md, Metrics).
WATCHED = (
    "crm_http_requests_total",
    "crm_ready_check",
    "crm_outbox_pending",
    "crm_outbox_oldest_pending_age_seconds",
    "crm_outbox_relayed_total",
    "crm_event_dead_letters",
    "crm_events_dead_lettered_total",
    "crm_admission_refused_total",
)


# --- the platform ---------------------------------------------------------------------------------


class Platform:
    """The gateway and every service as processes, each of which can be killed and started again."""

    def __init__(self, database_url: str, amqp_url: str, namespace: str, data_dir: Path):
        self.gateway_port = s.free_port()
        base = _free_port_block(len(SERVICES))
        self.ports = {"gateway": self.gateway_port, **service_ports(base)}
        self.urls = {n: f"http://{s.HOST}:{p}" for n, p in self.ports.items()}
        self.env = distributed_env(
            database_url=database_url,
            amqp_url=amqp_url,
            data_dir=data_dir,
            host=s.HOST,
            service_base_port=base,
            events_namespace=namespace,
            extra_env={
                "CRM_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "CRM_GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "CRM_LOG_LEVEL": "WARNING",
                # The stream runs at the default limit (1200 a minute per credential): not what is drilled.
                "CRM_GATEWAY_RATE_LIMIT_ENABLED": "false",
            },
        )
        self.logs = data_dir / "logs"
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> subprocess.Popen:
        self.procs[name] = s.start(
            serve_argv(name, s.HOST, self.ports[name]), self.env, self.logs / f"{name}.log"
        )
        return self.procs[name]

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        s.wait_ready(
            self.procs[name],
            self.urls[name] + "/readyz",
            name=name,
            log_file=self.logs / f"{name}.log",
            timeout=timeout,
            poll=0.05,
        )

    def start_all(self) -> None:
        # The gateway first: it writes the token key pair the services verify with.
        self.start("gateway")
        self.wait_ready("gateway")
        for name in SERVICES:
            self.start(name)
        for name in SERVICES:
            self.wait_ready(name)

    def kill9(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()

    def stop_all(self) -> None:
        s.stop(list(self.procs.values()))


def _free_port_block(count: int) -> int:
    for base in range(21000, 32000 - count, 37):
        try:
            with contextlib.ExitStack() as stack:
                for port in range(base, base + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind((s.HOST, port))
            return base
        except OSError:
            continue
    raise RuntimeError(f"no {count} consecutive free ports")


# --- what an operator looks at --------------------------------------------------------------------


async def metrics(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The watched lines of one /metrics page, as `name{labels}` -> value; {} when it does not answer."""
    try:
        async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(total=3)) as r:
            text = await r.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    lines = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(WATCHED) and not sample.name.endswith("_created"):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                lines[f"{sample.name}{{{labels}}}"] = sample.value
    return lines


async def readiness(http: aiohttp.ClientSession, url: str) -> str:
    """`/readyz` as an operator reads it: `200 degraded broker=false`, or `down`."""
    try:
        async with http.get(url + "/readyz", timeout=aiohttp.ClientTimeout(total=3)) as r:
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return "down"
    checks = " ".join(f"{k}={str(v).lower()}" for k, v in (body.get("checks") or {}).items())
    return f"{r.status} {body.get('status', '')} {checks}".strip()


def metric_sum(lines: dict[str, float], name: str, **labels: str) -> float:
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in lines.items() if k.split("{")[0] == name and all(w in k for w in want))


def changed(before: dict[str, float], after: dict[str, float]) -> list[str]:
    return [
        f"  {k} {before.get(k, 0):g} -> {v:g}"
        for k, v in sorted(after.items())
        if v != before.get(k, 0) and "duration" not in k
    ]


def crm_command(platform: Platform, *argv: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", *argv],
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=s.REPO,
    )
    return (out.stdout + out.stderr).strip()


@dataclass
class Timeline:
    """One line per second in which something an operator watches changed."""

    started: float
    rows: list[str] = field(default_factory=list)
    last: str = ""

    async def sample(self, http: aiohttp.ClientSession, platform: Platform, stream: "Stream") -> None:
        gateway = await readiness(http, platform.urls["gateway"])
        customer = await readiness(http, platform.urls["customer"])
        m = await metrics(http, platform.urls["customer"])
        pending = metric_sum(m, "crm_outbox_pending") if m else None
        state = (
            f"gateway {gateway:<22} customer-svc {customer:<34} "
            f"outbox_pending {'-' if pending is None else f'{pending:g}':>5} "
            f"oldest_age_s {metric_sum(m, 'crm_outbox_oldest_pending_age_seconds') if m else 0:>5.1f} "
            f"relayed published/failed {metric_sum(m, 'crm_outbox_relayed_total', outcome='published'):g}/"
            f"{metric_sum(m, 'crm_outbox_relayed_total', outcome='failed'):g}"
        )
        key = f"{gateway}|{customer}|{pending is None}|{pending == 0}"
        t = time.monotonic() - self.started
        if key != self.last or (int(t) % 10 == 0 and not self.rows[-1].startswith(f"t={int(t):>3}")):
            self.rows.append(f"t={int(t):>3}s {state} answers {stream.summary()}")
            self.last = key

    async def run(self, http, platform, stream, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample(http, platform, stream)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


# --- the load -------------------------------------------------------------------------------------


class Stream:
    """Customer creates at a steady rate (open loop: a slow or dead upstream does not slow the
    arrivals), each with its own Idempotency-Key and a unique email; remembers every key's answer."""

    def __init__(self, http: aiohttp.ClientSession, gateway: str, headers: dict, rate: float, tag: str):
        self.http, self.gateway, self.headers, self.rate, self.tag = http, gateway, headers, rate, tag
        self.answers: dict[str, tuple[int, str]] = {}  # key -> (status, code); 0 = no answer
        self.created_at: list[float] = []  # when each 201/200 came back (time.monotonic())
        self.customer_ids: dict[str, str] = {}

    def body(self, key: str) -> dict:
        return {"firstName": "Drill", "lastName": self.tag, "email": f"{key}@drill.example.com"}

    async def create(self, key: str) -> tuple[int, str]:
        headers = {**self.headers, "Idempotency-Key": key}
        try:
            async with self.http.post(
                f"{self.gateway}/api/v1/customers", json=self.body(key), headers=headers
            ) as r:
                body = await r.json(content_type=None)
                status, code = r.status, (body.get("code", "") if r.status >= 400 else "")
                if r.status in (200, 201):
                    self.customer_ids[key] = body["id"]
                    self.created_at.append(time.monotonic())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status, code = 0, type(exc).__name__
        self.answers[key] = (status, code)
        return status, code

    async def run(self, stop: asyncio.Event) -> None:
        tasks = set()
        interval, n = 1 / self.rate, 0
        started = time.monotonic()
        while not stop.is_set():
            task = asyncio.create_task(self.create(f"{self.tag}-{n:05d}"))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
        if tasks:
            await asyncio.gather(*tasks)

    def by_answer(self) -> collections.Counter:
        return collections.Counter(f"{st} {code}".strip() for st, code in self.answers.values())

    def summary(self) -> str:
        return " ".join(f"{k}:{v}" for k, v in sorted(self.by_answer().items()))

    def unacknowledged(self) -> list[str]:
        return [k for k, (st, _) in self.answers.items() if st not in (200, 201)]

    async def retry_unacknowledged(self, timeout: float = 90) -> collections.Counter:
        """Each key without a 2xx, again with the same key and body, until it gets one (a key whose
        claim is still leased answers 409 for up to 10 s: wait and retry, as a client would)."""
        outcomes: collections.Counter = collections.Counter()
        deadline = time.monotonic() + timeout
        for key in self.unacknowledged():
            while True:
                status, code = await self.create(key)
                outcomes[f"{status} {code}".strip()] += 1
                if status in (200, 201) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
        return outcomes


async def wait_until(predicate, timeout: float, poll: float = 0.25) -> float | None:
    """Seconds until the async predicate held, None if it did not within timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(poll)
    return None


# --- checks in the databases ----------------------------------------------------------------------


async def write_counts(database_url: str, tag: str) -> tuple[int, int, int]:
    """(customers, distinct emails, 'Customer created' notes) of one run, straight from the tables."""
    conn = await asyncpg.connect(database_url)
    try:
        rows, distinct = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT email) FROM customer.customers WHERE last_name = $1", tag
        )
        notes = await conn.fetchval(
            "SELECT count(DISTINCT a.customer_id) FROM activity.activities a "
            "WHERE a.subject = 'Customer created' AND a.customer_id IN "
            "(SELECT id FROM customer.customers WHERE last_name = $1)",
            tag,
        )
    finally:
        await conn.close()
    return rows, distinct, notes


async def outboxes_pending(http: aiohttp.ClientSession, platform: Platform) -> float:
    pages = await asyncio.gather(*(metrics(http, platform.urls[n]) for n in SERVICES))
    return sum(metric_sum(m, "crm_outbox_pending") for m in pages)


def dead_letter_count(platform: Platform) -> tuple[int, int, str]:
    """(dead letters, broker dead-letter queue messages, `crm events dlq list` as printed)."""
    doc = json.loads(crm_command(platform, "events", "dlq", "list", "--json"))
    return (
        len(doc["deadLetters"]),
        sum(doc["brokerQueues"].values()),
        crm_command(platform, "events", "dlq", "list"),
    )


def table(rows: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# --- the drills -----------------------------------------------------------------------------------


async def kill_drill(http, platform: Platform, headers: dict, args) -> None:
    tag = f"Kill{uuid.uuid4().hex[:6]}"
    print(
        f"\n=== kill -9 drill: customer-svc killed {args.kill_at:g}s into {args.seconds:g}s of creates "
        f"at {args.rate:g}/s, started again {args.restart_after:g}s later ==="
    )
    stream = Stream(http, platform.urls["gateway"], headers, args.rate, tag)
    stop, sampler_stop = asyncio.Event(), asyncio.Event()
    timeline = Timeline(time.monotonic())
    sampler = asyncio.create_task(timeline.run(http, platform, stream, sampler_stop))
    load = asyncio.create_task(stream.run(stop))

    await asyncio.sleep(args.kill_at)
    before = await metrics(http, platform.urls["gateway"])
    killed_at = time.monotonic()
    platform.kill9("customer")
    log("customer-svc killed with SIGKILL")
    await asyncio.sleep(args.restart_after)
    spawned = time.monotonic()
    platform.start("customer")
    await asyncio.to_thread(platform.wait_ready, "customer")
    ready_s = time.monotonic() - spawned
    log(f"customer-svc ready {ready_s:.1f}s after its start")

    await asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - timeline.started)))
    stop.set()
    await load
    sampler_stop.set()
    await sampler
    served_again = min((t for t in stream.created_at if t > spawned), default=None)
    through_gateway_s = None if served_again is None else served_again - spawned
    outage_s = None if served_again is None else served_again - killed_at
    after_gateway = await metrics(http, platform.urls["gateway"])
    answers = stream.by_answer()
    unacked = stream.unacknowledged()
    retried = await stream.retry_unacknowledged()
    drained_s = await wait_until(lambda: _zero(outboxes_pending(http, platform)), 120)

    async def caught_up() -> bool:
        rows, _, notes = await write_counts(platform.env["CRM_DATABASE_URL"], tag)
        return notes == rows

    caught_up_s = await wait_until(caught_up, 120)
    rows, distinct, notes = await write_counts(platform.env["CRM_DATABASE_URL"], tag)
    letters, broker_dlq, dlq_text = dead_letter_count(platform)
    customer_after = await metrics(http, platform.urls["customer"])

    print("\nTimeline (one line per change, and every 10 s):")
    print("\n".join("  " + r for r in timeline.rows))
    print("\nGateway /metrics lines that changed from the kill to the end of the stream:")
    print("\n".join(changed(before, after_gateway)) or "  (none)")
    print("\ncustomer-svc /metrics after the restart (a new process: counters start again):")
    print(
        "\n".join(
            f"  {k} {v:g}"
            for k, v in sorted(customer_after.items())
            if k.startswith(("crm_outbox", "crm_ready_check"))
        )
    )
    print("\n$ crm events dlq list\n" + "\n".join("  " + x for x in dlq_text.splitlines()))
    print("\nFigures:")
    print(
        table(
            [
                ("creates sent (keys)", len(stream.answers)),
                ("answers during the stream", ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))),
                (
                    "client-visible errors",
                    sum(v for k, v in answers.items() if not k.startswith(("200", "201"))),
                ),
                ("kill -> customer-svc started again", f"{args.restart_after:.1f} s (the drill's choice)"),
                ("customer-svc start -> /readyz 200", f"{ready_s:.1f} s"),
                ("customer-svc start -> first 201 via the gateway", _s(through_gateway_s)),
                ("kill -> creates served again", _s(outage_s)),
                (
                    "keys retried (no 2xx first time)",
                    f"{len(unacked)}: " + ", ".join(f"{k}: {v}" for k, v in sorted(retried.items()))
                    if unacked
                    else "0",
                ),
                ("acknowledged (2xx) the first time", len(stream.answers) - len(unacked)),
                (
                    "customers in the database",
                    f"{rows} rows, {distinct} distinct emails for {len(stream.answers)} keys",
                ),
                ("duplicates", rows - distinct),
                ("lost (keys with no row)", len(stream.answers) - distinct),
                ("retries done -> every outbox drained", _s(drained_s)),
                ("-> every 'Customer created' note in activity-svc", f"{_s(caught_up_s)} ({notes}/{rows})"),
                ("dead letters / broker DLQ messages", f"{letters} / {broker_dlq}"),
            ]
        )
    )


async def admin_headers(http: aiohttp.ClientSession, platform: Platform) -> dict[str, str]:
    bearer = await s.login(http, platform.urls["gateway"], ADMIN_PASSWORD)
    return {"Authorization": f"Bearer {bearer}"}


async def outage_drill(http, platform: Platform, args) -> None:
    tag = f"Outage{uuid.uuid4().hex[:6]}"
    if args.wait_before_outage:
        log(f"waiting until `{args.wait_before_outage}` succeeds before stopping the broker")
        while True:
            gate = await asyncio.create_subprocess_shell(args.wait_before_outage)
            if await gate.wait() == 0:
                break
            await asyncio.sleep(10)
    # Logged in after the wait: an access token lives 15 minutes.
    headers = await admin_headers(http, platform)
    print(
        f"\n=== broker outage drill: `{args.broker_stop}` for {args.outage_seconds:g}s "
        f"during creates at {args.rate:g}/s ==="
    )
    stream = Stream(http, platform.urls["gateway"], headers, args.rate, tag)
    stop, sampler_stop = asyncio.Event(), asyncio.Event()
    timeline = Timeline(time.monotonic())
    sampler = asyncio.create_task(timeline.run(http, platform, stream, sampler_stop))
    load = asyncio.create_task(stream.run(stop))
    await asyncio.sleep(5)
    before = await metrics(http, platform.urls["customer"])
    during: dict[str, float] = {}
    opportunity_during = "not tried"
    readiness_during = ""
    broker_back_s = None
    try:
        stopped = await broker(args.broker_stop)
        log(f"broker stopped ({stopped:.1f}s)")
        await asyncio.sleep(args.outage_seconds / 2)
        opportunity_during = await opportunity_for_new_customer(http, platform, headers, tag)
        await asyncio.sleep(args.outage_seconds / 2 - 2)
        readiness_during = " | ".join(
            [f"gateway {await readiness(http, platform.urls['gateway'])}"]
            + [f"{n} {await readiness(http, platform.urls[n])}" for n in ("customer", "activity", "pipeline")]
        )
        during = await metrics(http, platform.urls["customer"])
    finally:
        started_at = time.monotonic()
        await broker(args.broker_start)
        broker_back_s = await wait_port(5672, 120)
        log(f"broker started again; port 5672 open after {broker_back_s}")
    # The stream stops with the outage: what follows is the backlog alone draining.
    stop.set()
    await load
    answers = stream.by_answer()

    async def reconnected() -> bool:
        return "broker=true" in await readiness(http, platform.urls["customer"])

    reconnected_s = await wait_until(reconnected, 120)
    reconnected_total = None if reconnected_s is None else time.monotonic() - started_at
    drained_s = await wait_until(lambda: _zero(outboxes_pending(http, platform)), 300)
    drained_total = None if drained_s is None else time.monotonic() - started_at

    async def caught_up() -> bool:
        rows, _, notes = await write_counts(platform.env["CRM_DATABASE_URL"], tag)
        return notes == rows

    caught_up_s = await wait_until(caught_up, 300)
    sampler_stop.set()
    await sampler
    rows, distinct, notes = await write_counts(platform.env["CRM_DATABASE_URL"], tag)
    opportunity_after = await opportunity_for_new_customer(http, platform, headers, tag)
    letters, broker_dlq, dlq_text = dead_letter_count(platform)
    after = await metrics(http, platform.urls["customer"])

    print("\nTimeline (one line per change, and every 10 s):")
    print("\n".join("  " + r for r in timeline.rows))
    print("\n/readyz near the end of the outage: " + readiness_during)
    print("\ncustomer-svc /metrics: before the outage -> near its end -> after the drain:")
    for k in sorted(set(before) | set(during) | set(after)):
        if k.startswith(("crm_outbox", "crm_ready_check")):
            print(f"  {k} {before.get(k, 0):g} -> {during.get(k, 0):g} -> {after.get(k, 0):g}")
    print("\n$ crm events dlq list\n" + "\n".join("  " + x for x in dlq_text.splitlines()))
    print("\nFigures:")
    print(
        table(
            [
                ("creates sent (5 s before and during the outage)", len(stream.answers)),
                ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(answers.items()))),
                ("opportunity for a customer created mid-outage", opportunity_during),
                ("customers in the database", f"{rows} rows, {distinct} distinct emails"),
                ("broker start -> port 5672 open", _s(broker_back_s)),
                ("broker start -> customer-svc /readyz broker=true", _s(reconnected_total)),
                ("broker start -> every outbox drained", _s(drained_total)),
                (
                    "-> every 'Customer created' note in activity-svc",
                    f"{_s(caught_up_s)} after the drain ({notes}/{rows})",
                ),
                ("opportunity for a new customer after it", opportunity_after),
                ("dead letters / broker DLQ messages", f"{letters} / {broker_dlq}"),
            ]
        )
    )


async def opportunity_for_new_customer(http, platform: Platform, headers: dict, tag: str) -> str:
    """A customer created now and an opportunity for it at once: pipeline-svc has not heard of the
    customer through events yet when the broker is away, and asks customer-svc."""
    email = f"{tag.lower()}-opp-{uuid.uuid4().hex[:6]}@drill.example.com"
    body = {"firstName": "Drill", "lastName": tag, "email": email}
    async with http.post(f"{platform.urls['gateway']}/api/v1/customers", json=body, headers=headers) as r:
        customer = await r.json(content_type=None)
        if r.status != 201:
            return f"customer: {r.status} {customer.get('code')}"
    opp = {"title": "Drill deal", "customerId": customer["id"]}
    async with http.post(f"{platform.urls['gateway']}/api/v1/opportunities", json=opp, headers=headers) as r:
        answer = await r.json(content_type=None)
        return f"{r.status}" + ("" if r.status == 201 else f" {answer.get('code')}")


async def broker(command: str) -> float:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *shlex.split(command), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"`{command}` failed ({proc.returncode}): {err.decode()[-500:]}")
    return time.monotonic() - started


async def wait_port(port: int, timeout: float) -> float | None:
    async def open_() -> bool:
        try:
            _, writer = await asyncio.open_connection(s.HOST, port)
        except OSError:
            return False
        writer.close()
        return True

    return await wait_until(open_, timeout)


async def _zero(value) -> bool:
    return await value == 0


def _s(seconds: float | None) -> str:
    return "not within the timeout" if seconds is None else f"{seconds:.1f} s"


# --- the run --------------------------------------------------------------------------------------


async def main(args) -> None:
    namespace = f"drill{uuid.uuid4().hex[:8]}."
    dbname = f"crm_drill_{uuid.uuid4().hex[:10]}"
    with s.scratch_dir("crm-drill-", keep=args.keep, log=log) as data_dir:
        async with s.scratch_database(args.pg, dbname, keep=args.keep, log=log) as database_url:
            platform = Platform(database_url, args.amqp, namespace, data_dir)
            try:
                log(f"starting the distributed mode (database {dbname}, events namespace {namespace})")
                await asyncio.to_thread(platform.start_all)
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
                    if args.drill in ("kill", "both"):
                        await kill_drill(http, platform, await admin_headers(http, platform), args)
                    if args.drill in ("outage", "both"):
                        await outage_drill(http, platform, args)
            finally:
                await asyncio.to_thread(platform.stop_all)
                if await wait_port(urllib.parse.urlsplit(args.amqp).port or 5672, 5) is not None:
                    await s.delete_broker_objects(args.amqp, namespace, log)
                else:
                    log("the broker is not answering: its queues for this run were left behind")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--drill", choices=("kill", "outage", "both"), default="both")
    p.add_argument("--rate", type=float, default=20, help="customer creates per second (20)")
    p.add_argument("--seconds", type=float, default=30, help="length of the kill drill's stream (30)")
    p.add_argument(
        "--kill-at", type=float, default=8, help="seconds into the stream customer-svc is killed (8)"
    )
    p.add_argument("--restart-after", type=float, default=5, help="seconds it stays dead (5)")
    p.add_argument("--outage-seconds", type=float, default=60, help="how long the broker is stopped (60)")
    p.add_argument("--broker-stop", default="rabbitmqctl stop_app")
    p.add_argument("--broker-start", default="rabbitmqctl start_app")
    p.add_argument("--wait-before-outage", default="", help="shell command polled until it exits 0")
    p.add_argument("--pg", default=os.environ.get("CRM_BENCH_PG", s.DEFAULT_PG))
    p.add_argument("--amqp", default=os.environ.get("CRM_BENCH_AMQP", s.DEFAULT_AMQP))
    p.add_argument("--keep", action="store_true", help="keep the database and logs")
    return p.parse_args()


if __name__ == "__main__":
    s.run_async(main(parse_args()))
