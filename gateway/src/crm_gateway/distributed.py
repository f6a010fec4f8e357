"""Distributed mode on one machine: one process per service plus the gateway, on Postgres and
RabbitMQ, started with the same `crm serve <service>` commands docker-compose runs.

`python -m crm_gateway.distributed` (or `make distributed`) runs it in the foreground; tests and
benchmarks use `run_distributed()`.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from crm_gateway.settings import SERVICES


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except Exception:
        return False


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
    env = {
        **os.environ,
        "CRM_DATABASE_URL": database_url,
        "CRM_AMQP_URL": amqp_url,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_EVENTS_NAMESPACE": events_namespace,
        **(extra_env or {}),
    }
    ports = {name: service_base_port + i for i, name in enumerate(SERVICES)}
    for name, port in ports.items():
        env[f"CRM_GATEWAY_{name.upper()}_URL"] = f"http://{host}:{port}"
    log_dir = log_dir or data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen] = {}
    logs = []
    try:
        # The gateway first: it writes the token key pair the services verify with.
        for name, port in [("gateway", gateway_port), *ports.items()]:
            log = open(log_dir / f"{name}.log", "ab")
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "crm_gateway.cli", "serve", name, "--host", host, "--port", str(port)],
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
        for log in logs:
            log.close()


def main() -> None:
    database_url = os.environ.get("CRM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    amqp_url = os.environ.get("CRM_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    data_dir = Path(os.environ.get("CRM_DATA_DIR", "data"))
    port = int(os.environ.get("CRM_PORT", "8000"))
    with run_distributed(
        database_url=database_url, amqp_url=amqp_url, data_dir=data_dir, gateway_port=port
    ) as url:
        print(
            f"CRM (distributed) is serving on {url}; logs in {data_dir / 'logs'}. Ctrl+C stops it.",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
