"""What the benchmark scripts share: ports, readiness, percentiles, the CRM's processes and the
clean-up of a throw-away broker namespace."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@contextlib.contextmanager
def crm_processes(ports: dict[str, int], env: dict, logs: Path, timeout: float = 120) -> Iterator[None]:
    """`crm serve <name>` for each name, as the distributed mode runs them; waits for /readyz and
    stops them all (process groups) on the way out."""
    procs = []
    try:
        for name, port in ports.items():
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "crm_gateway.cli", "serve", name, "--port", str(port)],
                    env=env,
                    stdout=open(logs / f"{name}.log", "ab"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            deadline = time.monotonic() + timeout
            while not ready(f"http://127.0.0.1:{port}/readyz"):
                if procs[-1].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start; see {logs / name}.log")
                time.sleep(0.2)
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


async def delete_broker_objects(amqp_url: str, namespace: str) -> None:
    import aio_pika
    from crm_common.events.catalogue import SUBSCRIPTIONS

    queues = [f"{namespace}{c}.events{suffix}" for c in SUBSCRIPTIONS for suffix in ("", ".dlq")]
    exchanges = [f"{namespace}crm.events", f"{namespace}crm.events.dlx"]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for kind, name in [("queue", q) for q in queues] + [("exchange", e) for e in exchanges]:
            channel = await connection.channel()
            try:
                await (channel.queue_delete(name) if kind == "queue" else channel.exchange_delete(name))
            except Exception:
                pass  # never declared in this run
            finally:
                if not channel.is_closed:
                    await channel.close()
