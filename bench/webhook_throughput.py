"""Webhook delivery throughput and p99 commit-to-delivery latency at a steady rate, in the embedded
default (`crm up`: one process, SQLite, in-process bus) and the distributed mode (every service its
own process, Postgres + RabbitMQ).

For each mode: a fresh install, a receiver in this process (webhook_svc.receiver on loopback,
answering 200 at once) subscribed to `customer.created`, a short warm-up, then customers created
through the gateway at `--rate` per second for `--seconds` (paced by the clock). Each created
customer owes one delivery; latency = arrival at the receiver - the CloudEvent's `time` (set in
customer-svc's transaction, just before its commit). Prints, per mode, the deliveries per second
(first to last arrival), p50/p99/max latency, and from the delivery log where the time went
(event -> queued in webhook-svc, queued -> delivered). Creates refused by admission control (503) owe
nothing and are counted apart. The receiver runs on its own event loop (a thread), so the load
generator's backlog does not delay its answers.

    .venv/bin/python bench/webhook_throughput.py                       # both modes, 100/s for 30 s
    .venv/bin/python bench/webhook_throughput.py --mode distributed --rate 50 --seconds 10

bench/webhooks.py (embedded only) adds a burst phase and the receiver's own ceiling.
"""

import argparse
import asyncio
import json
import os
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _support import (
    DEFAULT_AMQP,
    DEFAULT_PG,
    HOST,
    clean_env,
    create_database,
    delete_broker_objects,
    drop_database,
    free_port,
    latency_stats,
    logger,
    run_async,
    scratch_dir,
    server_process,
    write_results,
)
from webhook_svc.receiver import Receiver
from webhooks import arrival_latencies, breakdown

log = logger("webhook-throughput")
PASSWORD = "bench-Secret-pass-1"
SERVER_ENV = {
    "CRM_RATE_LIMIT_ENABLED": "false",
    "CRM_GATEWAY_RATE_LIMIT_ENABLED": "false",
    "CRM_LOG_LEVEL": "WARNING",
    # The receiver runs on this machine: its network is allowed, as an operator would allow it.
    "CRM_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
}


class ReceiverThread:
    """The receiver on its own event loop in a thread: the load generator's thousands of tasks would
    otherwise delay its answers (and so the deliveries) by their own backlog."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        self.receiver = asyncio.run_coroutine_threadsafe(Receiver().start(), self.loop).result(30)
        return self.receiver

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def create(client: httpx.AsyncClient, n: int) -> str:
    try:
        r = await client.post(
            "/api/v1/customers",
            json={
                "firstName": "Bench",
                "lastName": str(n),
                "email": f"rate-{n}-{uuid.uuid4().hex[:6]}@bench.example",
            },
        )
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if r.status_code == 201:
        return "created"
    return r.json().get("code", str(r.status_code)) if r.content else str(r.status_code)


async def wait_for(receiver: Receiver, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def steady(client, receiver: Receiver, args) -> dict:
    """`--rate` creates per second, paced by the clock; at most `--max-in-flight` at once (a tick
    that finds them all busy sends nothing and is counted as `not_sent`)."""
    count = int(args.rate * args.seconds)
    before = len(receiver.received)
    in_flight = asyncio.Semaphore(args.max_in_flight)
    tasks, not_sent = [], 0
    started = time.monotonic()

    async def one(n):
        try:
            return await create(client, n)
        finally:
            in_flight.release()

    for n in range(count):
        delay = started + n / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight.locked():
            not_sent += 1
            continue
        await in_flight.acquire()
        tasks.append(asyncio.create_task(one(n)))
    sending = time.monotonic() - started
    outcomes = Counter(await asyncio.gather(*tasks))
    created = outcomes.pop("created", 0)
    complete = await wait_for(receiver, before + created, args.drain)
    arrived = receiver.received[before:]
    span = max(g.at for g in arrived) - min(g.at for g in arrived) if len(arrived) > 1 else None
    return {
        "offered": count,
        "sent_per_s": round(len(tasks) / sending, 1),
        "not_sent": not_sent,
        "created": created,
        "refused": dict(outcomes),
        "delivered": len(arrived),
        "complete": complete,
        "delivered_per_s": round(len(arrived) / span, 1) if span else None,
        "commit_to_delivery": latency_stats(arrival_latencies(receiver, before), (50, 95, 99)),
    }


async def measure(base: str, receiver: Receiver, args) -> dict:
    limits = httpx.Limits(max_connections=args.max_in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"username": "admin@example.com", "password": PASSWORD}
        )
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        r = await client.post(
            "/api/v1/webhooks", json={"url": receiver.url, "eventTypes": ["customer.created"]}
        )
        r.raise_for_status()
        hook_id = r.json()["id"]
        log(f"warm-up: {args.warmup} creates")
        warm = [await create(client, -n) for n in range(1, args.warmup + 1)]
        # Its deliveries arrive before the measured phase starts counting.
        await wait_for(receiver, warm.count("created"), args.drain)
        log(f"steady: {args.rate}/s for {args.seconds} s")
        since = datetime.now(UTC)
        result = await steady(client, receiver, args)
        result["log"] = await breakdown(client, hook_id, since)
        return result


def embedded(args, folder: Path) -> dict:
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = clean_env(
        **SERVER_ENV,
        CRM_DATA_DIR=str(folder / "data"),
        CRM_HOST=HOST,
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=PASSWORD,
    )
    with server_process(
        [".venv/bin/python", "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
        env=env,
        log_file=folder / "crm-up.log",
        ready_url=f"{base}/readyz",
        name="crm up",
        timeout=180,
    ):
        with ReceiverThread() as receiver:
            return run_async(measure(base, receiver, args))


def distributed(args, folder: Path) -> dict:
    from crm_gateway.distributed import run_distributed

    tag = uuid.uuid4().hex[:8]
    db_name, namespace = f"crm_webhook_bench_{tag}", f"webhook-bench-{tag}."
    database_url = run_async(create_database(args.database_url, db_name))
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CRM_")}
    try:
        with run_distributed(
            database_url=database_url,
            amqp_url=args.amqp_url,
            data_dir=folder / "data",
            host=HOST,
            gateway_port=free_port(),
            service_base_port=free_port() + 1,
            events_namespace=namespace,
            extra_env={**SERVER_ENV, "CRM_ADMIN_PASSWORD": PASSWORD},
            startup_timeout=180,
        ) as base:
            with ReceiverThread() as receiver:
                return run_async(measure(base, receiver, args))
    finally:
        os.environ.update(saved)
        run_async(drop_database(args.database_url, db_name, log))
        run_async(delete_broker_objects(args.amqp_url, namespace, log))


def summary(mode: str, r: dict) -> str:
    lat = r["commit_to_delivery"]
    return (
        f"{mode}: sent {r['sent_per_s']}/s ({r['not_sent']} not sent: client cap), created {r['created']} "
        f"(refused {r['refused']}), "
        f"delivered {r['delivered']} ({'all' if r['complete'] else 'INCOMPLETE'}), "
        f"{r['delivered_per_s']} deliveries/s; commit-to-delivery p50 {lat.get('p50_ms')} ms, "
        f"p99 {lat.get('p99_ms')} ms, max {lat.get('max_ms')} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("embedded", "distributed", "both"), default="both")
    parser.add_argument("--rate", type=float, default=100.0, help="events (customer creates) per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-in-flight", type=int, default=200, help="creates awaiting an answer at most")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds to wait for the deliveries")
    parser.add_argument("--database-url", default=DEFAULT_PG)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP)
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args()
    modes = ("embedded", "distributed") if args.mode == "both" else (args.mode,)
    results = {"at": datetime.now(UTC).isoformat(), "load_average": os.getloadavg(), "args": vars(args)}
    for mode in modes:
        for _attempt in range(3):
            try:
                with scratch_dir(f"crm-bench-webhook-{mode}-", keep=args.keep_data, log=log) as folder:
                    log(f"{mode} mode")
                    results[mode] = (embedded if mode == "embedded" else distributed)(args, folder)
                break
            except RuntimeError as exc:
                # A service that could not start (e.g. its port taken meanwhile on a shared machine).
                log(f"{mode} did not start ({exc}); trying again")
        else:
            raise SystemExit(f"{mode} mode did not start three times")
    path = write_results(results, "webhook_throughput_")
    print(json.dumps(results, indent=2))
    for mode in modes:
        print(summary(mode, results[mode]))
    print(f"(load average at start {results['load_average']}; results in {path})")


if __name__ == "__main__":
    main()
