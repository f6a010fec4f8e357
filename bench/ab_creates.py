"""Two trees' `crm up` side by side: server CPU per created customer, consumers included.

On a shared machine a throughput figure says more about the neighbours than about the code. This
starts two embedded CRMs at once, A and B (each its own data folder; `--a` / `--b` name the
PYTHONPATH of each, e.g. a `git archive` copy of an older commit, empty for this tree), seeds each,
then alternates phases between them: `--n` creates at `--concurrency` clients, then waits until
every created customer's note is in activity-svc (the consumers are done), and charges the whole
process's CPU time (user + system, every thread) over that span to the creates. Both see the same
minute's load; the medians over `--phases` phases are printed.

A 503 OVERLOADED is retried after 0.25 s (its CPU is charged too); `--no-admission` raises the
queue targets so nothing is refused and the figure is the creates' alone.

    .venv/bin/python bench/ab_creates.py --a "$BEFORE_PYTHONPATH" --no-admission
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid

import aiohttp
from _support import HOST, clean_env, free_port, logger, login, run_async, scratch_dir, server_process
from compare import UNLIMITED, seed_customers

log = logger("ab")
PASSWORD = "compare-Bench-pass-1"
TICKS = os.sysconf("SC_CLK_TCK")
NO_ADMISSION = {
    f"CRM_{prefix}ADMISSION_{name}_WAIT_SECONDS": "30"
    for prefix in ("", "GATEWAY_")
    for name in ("TARGET", "MAX")
}


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def notes(s: aiohttp.ClientSession, gateway: str, headers: dict) -> int:
    params = {"pageSize": "1", "type": "NOTE"}
    async with s.get(f"{gateway}/api/v1/activities", params=params, headers=headers) as r:
        return (await r.json())["total"]


async def phase(
    s: aiohttp.ClientSession, gateway: str, headers: dict, pid: int, n: int, clients: int
) -> dict:
    noted = await notes(s, gateway, headers)
    cpu, started = cpu_seconds(pid), time.perf_counter()
    todo, latencies, refused, run = list(range(n)), [], 0, uuid.uuid4().hex[:8]

    async def client() -> None:
        nonlocal refused
        while todo:
            i = todo.pop()
            body = {"firstName": "Load", "lastName": f"Run {i}", "email": f"ab-{run}-{i}@example.com"}
            while True:
                t0 = time.perf_counter()
                async with s.post(f"{gateway}/api/v1/customers", json=body, headers=headers) as r:
                    await r.read()
                if r.status == 201:
                    latencies.append(time.perf_counter() - t0)
                    break
                if r.status != 503:
                    raise RuntimeError(f"create answered {r.status}")
                refused += 1
                await asyncio.sleep(0.25)

    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:  # every note there: the consumers are done
        if await notes(s, gateway, headers) >= noted + n:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("the creates' notes were not all there within 120 s")
    latencies.sort()
    return {
        "cpu ms/create": 1000 * (cpu_seconds(pid) - cpu) / n,
        "creates/s": n / wall,
        "p50 ms": 1000 * latencies[len(latencies) // 2],
        "p99 ms": 1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "refused": refused,
        "drain s": time.perf_counter() - started - wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", default="", help="PYTHONPATH of tree A (empty: this tree)")
    parser.add_argument("--b", default="", help="PYTHONPATH of tree B (empty: this tree)")
    parser.add_argument("--n", type=int, default=300, help="creates per phase")
    parser.add_argument("--phases", type=int, default=4, help="phases per tree, interleaved")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-admission", action="store_true", help="nothing refused (queue targets 30 s)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        targets = {}
        for name, pythonpath in (("A", args.a), ("B", args.b)):
            data_dir = stack.enter_context(scratch_dir(f"crm-ab-{name}-", keep=False, log=log))
            port = free_port()
            env = clean_env(
                **UNLIMITED,
                **(NO_ADMISSION if args.no_admission else {}),
                CRM_DATA_DIR=str(data_dir),
                CRM_HOST=HOST,
                CRM_PORT=str(port),
                CRM_ADMIN_PASSWORD=PASSWORD,
            )
            env.pop("PYTHONPATH", None)
            if pythonpath:
                env["PYTHONPATH"] = pythonpath
            server = stack.enter_context(
                server_process(
                    [sys.executable, "-m", "crm_gateway.cli", "up", "--host", HOST, "--port", str(port)],
                    env=env,
                    log_file=data_dir / "logs" / "crm-up.log",
                    ready_url=f"http://{HOST}:{port}/readyz",
                    name=f"crm up {name}",
                )
            )
            run_async(seed_customers(f"sqlite:///{data_dir / 'customer.db'}", 2000))
            targets[name] = (f"http://{HOST}:{port}", server.pid)
        run_async(measure(targets, args))
    return 0


async def measure(targets: dict[str, tuple[str, int]], args: argparse.Namespace) -> None:
    results: dict[str, list[dict]] = {name: [] for name in targets}
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:
        headers = {
            name: {"Authorization": f"Bearer {await login(s, gateway, PASSWORD)}"}
            for name, (gateway, _) in targets.items()
        }
        for name, (gateway, pid) in targets.items():
            await phase(s, gateway, headers[name], pid, 50, args.concurrency)  # warm-up
        for p in range(args.phases):
            for name in list(targets) if p % 2 == 0 else list(targets)[::-1]:
                gateway, pid = targets[name]
                result = await phase(s, gateway, headers[name], pid, args.n, args.concurrency)
                results[name].append(result)
                figures = ", ".join(f"{k} {v:.1f}" for k, v in result.items())
                log(f"phase {p + 1} {name}: {figures} (load average {os.getloadavg()[0]:.1f})")
    for name, phases in results.items():
        medians = ", ".join(f"{k} {statistics.median(r[k] for r in phases):.1f}" for k in phases[0])
        print(f"median {name}: {medians}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
