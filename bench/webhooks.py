"""Webhook delivery: throughput, and commit-to-delivery latency at a steady rate.

Starts `crm up` (the embedded default) on a fresh data folder, runs a webhook receiver in this
process (webhook_svc.receiver, uvicorn on loopback, answering 200 at once), subscribes it to
`customer.created` and then:

1. **steady** — creates customers through the gateway at `--rate` per second for `--seconds`; for each
   delivery, latency = arrival at the receiver - the CloudEvent's `time` (set in the producer's
   transaction, a few ms before its commit). Prints p50/p99/max and the deliveries per second.
2. **burst** — `--burst` creates as fast as `--concurrency` clients can, then waits for every
   delivery: deliveries per second from the first create to the last arrival, beside the create rate.
3. **baseline** — the same receiver sent `--burst` signed POSTs straight from this process at the same
   concurrency: what the receiver itself can take, so the burst figure is read against it.

    .venv/bin/python bench/webhooks.py                      # 100 events/s for 30 s, burst of 2000
    .venv/bin/python bench/webhooks.py --rate 50 --seconds 10 --burst 500

The receiver verifies nothing (the tests do): it only records arrival times.
"""

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime

import httpx
from _support import clean_env, free_port, latency_stats, logger, scratch_dir, start, stop, wait_ready
from webhook_svc.receiver import Receiver
from webhook_svc.service import signing

log = logger("webhooks")
ADMIN_PASSWORD = "bench-Secret-pass-1"


def arrival_latencies(receiver: Receiver, since: int) -> list[float]:
    """Seconds from each event's time to its arrival, for the requests received after index `since`."""
    out = []
    for got in receiver.received[since:]:
        sent = datetime.fromisoformat(json.loads(got.body)["time"]).timestamp()
        out.append(got.at - sent)
    return out


async def wait_for(receiver: Receiver, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(receiver.received) < count:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def create(client: httpx.AsyncClient, n: int, run: str) -> bool:
    """One customer; False (and a log line) when refused, e.g. 503 OVERLOADED."""
    r = await client.post(
        "/api/v1/customers",
        json={"firstName": "Bench", "lastName": str(n), "email": f"{run}-{n}@bench.example"},
    )
    if r.status_code != 201:
        log(f"create {run}-{n}: {r.status_code} {r.text[:200]}")
    return r.status_code == 201


async def breakdown(client: httpx.AsyncClient, hook_id: str, since: datetime) -> dict:
    """Where the time went, from the delivery log: event -> queued in webhook-svc (the bus and the
    inbox transaction), queued -> delivered (the worker's claim, the POST, the record)."""
    await asyncio.sleep(1.0)  # the last outcomes are recorded just after the receiver answered
    queued, sent = [], []
    page = 1
    while True:
        r = await client.get(
            f"/api/v1/webhooks/{hook_id}/deliveries",
            params={"since": since.isoformat(), "state": "DELIVERED", "page": page, "pageSize": 200},
        )
        items = r.json()["items"]
        for d in items:
            at = {k: datetime.fromisoformat(d[k]) for k in ("eventTime", "createdAt", "deliveredAt")}
            queued.append((at["createdAt"] - at["eventTime"]).total_seconds())
            sent.append((at["deliveredAt"] - at["createdAt"]).total_seconds())
        if len(items) < 200:
            break
        page += 1
    return {"event_to_queued": latency_stats(queued), "queued_to_delivered": latency_stats(sent)}


async def steady(client, receiver, *, rate: float, seconds: float, drain: float) -> dict:
    count = int(rate * seconds)
    before = len(receiver.received)
    started = time.monotonic()
    tasks = []
    for n in range(count):
        # Paced by the clock, not by the answers: a slow answer does not lower the offered rate.
        delay = started + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create(client, n, "steady")))
    offered = count / (time.monotonic() - started)  # all sent (not all answered) by now
    created = sum(await asyncio.gather(*tasks))
    complete = await wait_for(receiver, before + created, drain)
    arrived = receiver.received[before:]
    span = max(g.at for g in arrived) - min(g.at for g in arrived) if len(arrived) > 1 else None
    return {
        "offered": count,
        "offered_per_s": round(offered, 1),
        "created": created,
        "delivered": len(arrived),
        "complete": complete,
        "delivered_per_s": round(len(arrived) / span, 1) if span else None,
        "commit_to_delivery": latency_stats(arrival_latencies(receiver, before), (50, 95, 99)),
    }


async def burst(client, receiver, *, count: int, concurrency: int, drain: float, run: str = "burst") -> dict:
    before = len(receiver.received)
    queue = iter(range(count))
    started = time.time()
    ok = 0

    async def worker():
        nonlocal ok
        for n in queue:
            created = await create(client, n, run)
            ok += created

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    created = time.time()
    complete = await wait_for(receiver, before + ok, drain)
    last = max((g.at for g in receiver.received[before:]), default=created)
    return {
        "offered": count,
        "created": ok,
        "created_per_s": round(ok / (created - started), 1),
        "delivered": len(receiver.received) - before,
        "complete": complete,
        "delivered_per_s": round((len(receiver.received) - before) / (last - started), 1),
        "commit_to_delivery": latency_stats(arrival_latencies(receiver, before), (50, 99)),
    }


async def baseline(receiver: Receiver, *, count: int, concurrency: int) -> dict:
    """Signed POSTs straight to the receiver: its own capacity, no CRM in between."""
    secret = signing.new_secret()
    body = json.dumps({"specversion": "1.0", "type": "crm.bench", "data": {}}).encode()
    queue = iter(range(count))
    async with httpx.AsyncClient(timeout=10) as direct:

        async def worker():
            for n in queue:
                headers = signing.headers([secret], msg_id=str(n), timestamp=datetime.now(UTC), body=body)
                (await direct.post(receiver.url, content=body, headers=headers)).raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"requests": count, "per_s": round(count / elapsed, 1)}


async def main(args) -> dict:
    receiver = await Receiver().start()
    with scratch_dir("crm-bench-webhooks-", keep=args.keep_data, log=log) as folder:
        port = free_port()
        env = clean_env(
            CRM_DATA_DIR=str(folder / "data"),
            CRM_PORT=str(port),
            CRM_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CRM_RATE_LIMIT_ENABLED="false",
            CRM_LOG_LEVEL="WARNING",
            CRM_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        )
        logs = folder / "crm.log"
        proc = start([".venv/bin/python", "-m", "crm_gateway.cli", "up"], env, logs)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(proc, base + "/readyz", name="crm up", log_file=logs, timeout=180)
            limits = httpx.Limits(max_connections=args.concurrency * 2)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                r = await client.post(
                    "/api/v1/auth/token", data={"username": "admin@example.com", "password": ADMIN_PASSWORD}
                )
                client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                r = await client.post(
                    "/api/v1/webhooks", json={"url": receiver.url, "eventTypes": ["customer.created"]}
                )
                r.raise_for_status()
                log("warm-up")
                await burst(
                    client, receiver, count=args.warmup, concurrency=8, drain=args.drain, run="warmup"
                )
                hook_id = r.json()["id"]
                log(f"steady: {args.rate}/s for {args.seconds} s")
                since = datetime.now(UTC)
                steady_result = await steady(
                    client, receiver, rate=args.rate, seconds=args.seconds, drain=args.drain
                )
                steady_result["log"] = await breakdown(client, hook_id, since)
                log(f"burst: {args.burst} creates at concurrency {args.concurrency}")
                since = datetime.now(UTC)
                burst_result = await burst(
                    client, receiver, count=args.burst, concurrency=args.concurrency, drain=args.drain
                )
                burst_result["log"] = await breakdown(client, hook_id, since)
        finally:
            stop([proc])
        log("baseline: the receiver alone")
        baseline_result = await baseline(receiver, count=args.burst, concurrency=args.concurrency)
    await receiver.stop()
    return {"steady": steady_result, "burst": burst_result, "receiver_alone": baseline_result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="events per second in the steady phase")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the steady phase")
    parser.add_argument("--burst", type=int, default=2000, help="creates in the burst phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the deliveries")
    parser.add_argument("--keep-data", action="store_true")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
