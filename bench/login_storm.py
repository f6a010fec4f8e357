"""Login storm: wrong sign-ins must not take the service down for everyone else (issue 13).

Starts the embedded CRM (`crm up`, SQLite) on a free port, signs in as the admin, creates a few
customers, then measures one reader (`GET /api/v1/customers`, one request at a time):

1. **baseline** — the reader alone for `--baseline` seconds;
2. **storm** — the reader while `--logins` wrong sign-ins (unknown emails, so each costs a full
   argon2 check unless it is throttled) are sent `--concurrency` at a time;

on two servers one after the other: the defaults (per-account and per-address throttling on), and
with throttling turned off (`CRM_GATEWAY_LOGIN_*_FAILURES` huge) so that every wrong sign-in is
hashed and only the bounded hashing (`CRM_GATEWAY_LOGIN_HASH_CONCURRENCY`) protects the reader.

Prints, per server and phase: the reader's n, p50, p99 and max, the count of 5xx the reader saw,
and the sign-ins by status (400 wrong, 429 throttled, 503 hash queue full, 5xx other).
Target: 0 5xx and a reader p99 under 250 ms during the storm.

    .venv/bin/python bench/login_storm.py [--logins 200] [--concurrency 50]
"""

import argparse
import asyncio
import secrets
import sys
import time
from collections import Counter

import aiohttp
from _support import (
    HOST,
    clean_env,
    free_port,
    latency_stats,
    logger,
    login,
    run_async,
    scratch_dir,
    server_process,
)

log = logger("login-storm")
NO_THROTTLE = {
    "CRM_GATEWAY_LOGIN_ACCOUNT_FAILURES": "1000000",
    "CRM_GATEWAY_LOGIN_ADDRESS_FAILURES": "1000000",
}


async def reader(session, base: str, headers: dict, stop: asyncio.Event) -> tuple[list[float], int, int]:
    latencies, server_errors, other = [], 0, 0
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(f"{base}/api/v1/customers?pageSize=25", headers=headers) as r:
            await r.read()
            status = r.status
        latencies.append(time.perf_counter() - started)
        if status >= 500:
            server_errors += 1
        elif status != 200:
            other += 1
    return latencies, server_errors, other


async def storm(session, base: str, count: int, concurrency: int) -> tuple[Counter, float]:
    statuses: Counter = Counter()
    queue = iter(range(count))
    started = time.perf_counter()

    async def one_client():
        for i in queue:
            form = {
                "username": f"nobody{i}-{secrets.token_hex(3)}@example.com",
                "password": "wrong-guess-123",
            }
            async with session.post(f"{base}/api/v1/auth/token", data=form) as r:
                await r.read()
                statuses[r.status] += 1

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return statuses, time.perf_counter() - started


async def drive(base: str, password: str, args) -> dict:
    connector = aiohttp.TCPConnector(limit=args.concurrency + 10)
    async with aiohttp.ClientSession(connector=connector) as session:
        headers = {"Authorization": f"Bearer {await login(session, base, password)}"}
        for i in range(10):
            body = {"firstName": "Storm", "lastName": f"Reader {i}", "email": f"reader{i}@example.com"}
            async with session.post(f"{base}/api/v1/customers", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()

        stop = asyncio.Event()
        task = asyncio.create_task(reader(session, base, headers, stop))
        await asyncio.sleep(args.baseline)
        stop.set()
        base_lat, base_5xx, base_other = await task

        stop = asyncio.Event()
        task = asyncio.create_task(reader(session, base, headers, stop))
        statuses, took = await storm(session, base, args.logins, args.concurrency)
        stop.set()
        storm_lat, storm_5xx, storm_other = await task
    return {
        "baseline": {**latency_stats(base_lat), "reader_5xx": base_5xx, "reader_other": base_other},
        "storm": {
            **latency_stats(storm_lat),
            "reader_5xx": storm_5xx,
            "reader_other": storm_other,
            "storm_seconds": round(took, 2),
            "logins": dict(sorted(statuses.items())),
            "login_5xx": sum(n for s, n in statuses.items() if s >= 500),
        },
    }


def run(args, data_dir, label: str, extra_env: dict) -> dict:
    port = free_port()
    base = f"http://{HOST}:{port}"
    password = secrets.token_urlsafe(16)
    env = clean_env(
        CRM_DATA_DIR=str(data_dir / label),
        CRM_HOST=HOST,
        CRM_PORT=str(port),
        CRM_ADMIN_PASSWORD=password,
        CRM_LOG_LEVEL="WARNING",
        **extra_env,
    )
    log(f"{label}: starting crm up on {base}")
    with server_process(
        [sys.executable, "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
        env=env,
        log_file=data_dir / f"{label}.log",
        ready_url=f"{base}/readyz",
        name="crm up",
    ):
        return run_async(drive(base, password, args))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds of the reader alone")
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args()
    results = {}
    with scratch_dir("crm-login-storm-", keep=args.keep_data, log=log) as data_dir:
        results["throttled (defaults)"] = run(args, data_dir, "throttled", {})
        results["throttling off (hash bound only)"] = run(args, data_dir, "unthrottled", NO_THROTTLE)
    print(f"{args.logins} wrong sign-ins at {args.concurrency} concurrent, one reader of GET /customers")
    for label, phases in results.items():
        for phase, r in phases.items():
            line = (
                f"{label:34} {phase:8} reader n={r['n']:5} p50={r['p50_ms']} ms p99={r['p99_ms']} ms "
                f"max={r['max_ms']} ms reader 5xx={r['reader_5xx']}"
            )
            if phase == "storm":
                line += f" | sign-ins {r['logins']} in {r['storm_seconds']} s, 5xx={r['login_5xx']}"
            print(line)
    bad = sum(p["reader_5xx"] for r in results.values() for p in r.values())
    bad += sum(r["storm"]["login_5xx"] - r["storm"]["logins"].get(503, 0) for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
