"""Distributed mode on one machine: one process per service plus the gateway, on Postgres and
RabbitMQ, started with the same `crm serve <service>` commands docker-compose runs.

`python -m crm_gateway.distributed` (or `make distributed`) runs it in the foreground; tests and
benchmarks use `run_distributed()`.
"""

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from crm_gateway.settings import SERVICES


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except Exception:
        return False


def service_ports(service_base_port: int) -> dict[str, int]:
    """Each service's port: numbered from service_base_port in SERVICES order."""
    return {name: service_base_port + i for i, name in enumerate(SERVICES)}


def serve_argv(name: str, host: str, port: int) -> list[str]:
    """`crm serve <name>`: the gateway or one service in its own process, as docker-compose runs it."""
    return [sys.executable, "-m", "crm_gateway.cli", "serve", name, "--host", host, "--port", str(port)]


def distributed_env(
    *,
    database_url: str,
    amqp_url: str,
    data_dir: Path,
    host: str = "127.0.0.1",
    service_base_port: int = 8001,
    events_namespace: str = "",
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment every process of the distributed mode runs with: one for all, so that a
    drill (bench/ops_drill.py) can start a killed service again exactly as it was."""
    env = {
        **os.environ,
        "CRM_DATABASE_URL": database_url,
        "CRM_AMQP_URL": amqp_url,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_EVENTS_NAMESPACE": events_namespace,
        **(extra_env or {}),
    }
    ports = service_ports(service_base_port)
    for name, port in ports.items():
        env[f"CRM_GATEWAY_{name.upper()}_URL"] = f"http://{host}:{port}"
    # Contexts look up customers they have not heard of yet at customer-svc, with a service credential.
    env["CRM_CUSTOMER_URL"] = f"http://{host}:{ports['customer']}"
    env.setdefault("CRM_SERVICE_TOKEN", secrets.token_urlsafe(32))
    return env


@contextmanager
def run_distributed(
    *,
    database_url: str,
    amqp_url: str,
    data_dir: Path,
    host: str = "127.0.0.1",
    gateway_port: int = 8000,
    service_base_port: int = 8001,
    events_namespace: str = "",
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
    log_dir: Path | None = None,
) -> Iterator[str]:
    """Start every service and the gateway; yield the gateway's base URL once all are ready."""
    ports = service_ports(service_base_port)
    env = distributed_env(
        database_url=database_url,
        amqp_url=amqp_url,
        data_dir=data_dir,
        host=host,
        service_base_port=service_base_port,
        events_namespace=events_namespace,
        extra_env=extra_env,
    )
    log_dir = log_dir or data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: list[IO[bytes]] = []
    try:
        # The gateway first: it writes the token key pair the services verify with.
        for name, port in [("gateway", gateway_port), *ports.items()]:
            log = open(log_dir / f"{name}.log", "ab")
            processes[name] = subprocess.Popen(
                serve_argv(name, host, port),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        urls = {"gateway": f"http://{host}:{gateway_port}"} | {
            n: f"http://{host}:{p}" for n, p in ports.items()
        }
        deadline = time.monotonic() + startup_timeout
        pending = dict(urls)
        while pending:
            for name, url in list(pending.items()):
                if processes[name].poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {processes[name].returncode}; see {log_dir / name}.log"
                    )
                if _ready(url + "/readyz"):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready after {startup_timeout}s: {sorted(pending)}; logs in {log_dir}"
                )
            time.sleep(0.2)
        yield urls["gateway"]
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for opened in logs:
            opened.close()


def options_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """`make distributed`'s settings, from the same variables the embedded default reads: the
    gateway on CRM_HOST:CRM_PORT, the services on the ports after it (or from CRM_SERVICE_BASE_PORT),
    and CRM_EVENTS_NAMESPACE kept, so two CRMs can share one broker."""
    port = int(env.get("CRM_PORT", "8000"))
    return {
        "database_url": env.get("CRM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "amqp_url": env.get("CRM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        "data_dir": Path(env.get("CRM_DATA_DIR", "data")),
        "host": env.get("CRM_HOST", "127.0.0.1"),
        "gateway_port": port,
        "service_base_port": int(env.get("CRM_SERVICE_BASE_PORT", str(port + 1))),
        "events_namespace": env.get("CRM_EVENTS_NAMESPACE", ""),
    }


def main() -> None:
    options = options_from_env(os.environ)
    first = options["service_base_port"]
    with run_distributed(**options) as url:
        print(
            f"CRM (distributed) is serving on {url}; services on ports {first}-{first + len(SERVICES) - 1}; "
            f"logs in {options['data_dir'] / 'logs'}. Ctrl+C stops it.",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("CRM (distributed) is stopping...", flush=True)
    print("CRM (distributed) stopped.", flush=True)


if __name__ == "__main__":
    main()
