"""What the benchmark scripts share: progress logging, percentiles, ports and server processes,
signing keys and tokens, throw-away databases and broker namespaces, CPU accounting and the results
folder. The scripts run as `python bench/<script>.py`, so bench/ is on sys.path and they import this
module as `_support`."""

import asyncio
import contextlib
import hashlib
import http.client
import importlib
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import aio_pika
import aiohttp
import asyncpg
import jwt
from crm_common.auth import ALGORITHM, new_keypair, permissions_for
from crm_common.db import Database
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.migrations import migrate as run_migrations

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def logger(name: str) -> Callable[[str], None]:
    """A `log(msg)` for one script: progress goes to stderr so that stdout holds only the figures."""

    def log(msg: str) -> None:
        print(f"[{name} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    return log


# --- statistics -----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def latency_stats(seconds: list[float], percentiles: Iterable[int] = (50, 99)) -> dict:
    """n, p<p>_ms for each percentile and max_ms of latencies measured in seconds."""
    return {
        "n": len(seconds),
        **{f"p{p}_ms": ms(percentile(seconds, p)) for p in percentiles},
        "max_ms": ms(max(seconds, default=None)),
    }


def md5_uuid(text: str) -> uuid.UUID:
    """The id Postgres computes with md5(text)::uuid: rows generated in SQL can be named from Python."""
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


# --- ports and server processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def ready(url: str) -> bool:
    # HTTPException too: a server still starting can drop the connection or answer half a status line.
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except (OSError, http.client.HTTPException):
        return False


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without the shell's CRM_* settings, plus `values`: a server sees
    only what the run chose."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(values)
    return env


def service_env(
    service: str, *, database_url: str, public_key: str, data_dir: Path, **values: str
) -> dict[str, str]:
    """The environment of `crm serve <service>` on its own database (schema named after the service),
    verifying tokens signed by the run's key."""
    prefix = f"CRM_{service.upper()}_"
    return clean_env(
        **{f"{prefix}DATABASE_URL": database_url, f"{prefix}DB_SCHEMA": service},
        CRM_JWT_PUBLIC_KEY=public_key,
        CRM_DATA_DIR=str(data_dir),
        CRM_LOG_LEVEL="WARNING",
        **values,
    )


def crm_serve(name: str, port: int) -> list[str]:
    """argv of `crm serve <name>`: the gateway or one service in its own uvicorn process, as the
    distributed mode runs it."""
    return [sys.executable, "-m", "crm_gateway.cli", "serve", name, "--host", HOST, "--port", str(port)]


def start(argv: list[str], env: dict, log_file: Path) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        # Its own session, so that stopping it stops whatever it started too.
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )


def wait_ready(
    proc: subprocess.Popen, url: str, *, name: str, log_file: Path, timeout: float, poll: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not ready(url):
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_file}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not ready after {timeout}s; see {log_file}")
        time.sleep(poll)


def stop(procs: list[subprocess.Popen], timeout: float = 15) -> None:
    # Every group gets SIGTERM before any is waited for, so several servers shut down in parallel.
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def server_process(
    argv: list[str],
    *,
    env: dict,
    log_file: Path,
    ready_url: str,
    name: str,
    timeout: float = 120,
    poll: float = 0.2,
) -> Iterator[subprocess.Popen]:
    """Start one server, wait until ready_url answers 200, stop it on the way out."""
    proc = start(argv, env, log_file)
    try:
        wait_ready(proc, ready_url, name=name, log_file=log_file, timeout=timeout, poll=poll)
        yield proc
    finally:
        stop([proc])


@contextlib.contextmanager
def crm_service(
    service: str, port: int, *, env: dict, log_file: Path, poll: float = 0.2
) -> Iterator[subprocess.Popen]:
    """`crm serve <service>` on 127.0.0.1:<port> while the block runs."""
    with server_process(
        crm_serve(service, port),
        env=env,
        log_file=log_file,
        ready_url=f"http://{HOST}:{port}/readyz",
        name=f"{service}-svc",
        poll=poll,
    ) as proc:
        yield proc


def crm_env(
    ports: dict[str, int],
    *,
    data_dir: Path,
    amqp_url: str,
    namespace: str,
    admin_password: str,
    **values: str,
) -> dict[str, str]:
    """The environment of the processes in `ports` (the gateway and services, as crm_processes starts
    them): the gateway finds each service on its port, events go to RabbitMQ under `namespace`."""
    return {
        **os.environ,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_AMQP_URL": amqp_url,
        "CRM_EVENTS_NAMESPACE": namespace,
        "CRM_GATEWAY_ADMIN_PASSWORD": admin_password,
        **{
            f"CRM_GATEWAY_{n.upper()}_URL": f"http://{HOST}:{port}"
            for n, port in ports.items()
            if n != "gateway"
        },
        "CRM_LOG_LEVEL": "WARNING",
        **values,
    }


@contextlib.contextmanager
def crm_processes(ports: dict[str, int], env: dict, logs: Path, timeout: float = 120) -> Iterator[None]:
    """`crm serve <name>` for each name, each started once the one before answers /readyz, logs in
    logs/<name>.log; all stopped on the way out."""
    procs = []
    try:
        for name, port in ports.items():
            log_file = logs / f"{name}.log"
            procs.append(start(crm_serve(name, port), env, log_file))
            url = f"http://{HOST}:{port}/readyz"
            wait_ready(procs[-1], url, name=name, log_file=log_file, timeout=timeout)
        yield
    finally:
        stop(procs)


@contextlib.contextmanager
def scratch_dir(prefix: str, *, keep: bool, log: Callable[[str], None]) -> Iterator[Path]:
    """A temporary folder for the servers' data and logs; kept when asked, and when the run fails so
    that the logs can say why."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    failed = False
    try:
        yield path
    except BaseException:
        failed = True
        raise
    finally:
        if keep or failed:
            log(f"data and logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_async(coro):
    """asyncio.run on uvloop (what the servers run on) when it is installed."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coro)


# --- tokens and HTTP ------------------------------------------------------------------------------


def signing_keys() -> tuple[str, str]:
    """A fresh Ed25519 key pair as PEM (private, public): the run signs its own tokens and hands the
    public key to the services it starts."""
    return new_keypair()


def token(private_key: str, role: str, user_id: uuid.UUID | None = None) -> str:
    """An access token as the gateway issues it, for one user with one role, valid for two hours."""
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id or uuid.uuid4()),
        "email": "bench@example.com",
        "name": "Bench",
        "roles": [role],
        "perms": sorted(permissions_for([role])),
        "iss": "crm-gateway",
        "aud": "crm",
        "iat": now,
        "exp": now + timedelta(hours=2),
    }
    return jwt.encode(claims, private_key, algorithm=ALGORITHM)


async def login(session: aiohttp.ClientSession, gateway: str, password: str) -> str:
    """The admin's access token from the gateway (OAuth2 password form)."""
    form = {"username": "admin@example.com", "password": password}
    async with session.post(f"{gateway}/api/v1/auth/token", data=form) as r:
        if r.status != 200:
            raise RuntimeError(f"token: HTTP {r.status} {await r.text()}")
        return (await r.json())["access_token"]


async def throughput(
    session: aiohttp.ClientSession, url: Callable[[], str], headers: dict, concurrency: int, seconds: float
) -> float:
    """GETs of url() per second answered 200, from `concurrency` clients for `seconds`."""
    deadline, count = time.perf_counter() + seconds, 0

    async def worker():
        nonlocal count
        while time.perf_counter() < deadline:
            async with session.get(url(), headers=headers) as r:
                await r.read()
                count += r.status == 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


# --- databases ------------------------------------------------------------------------------------


def with_database(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url` (user, host and query kept)."""
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path=f"/{name}"))


async def admin_sql(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_url: str, name: str) -> str:
    """Creates database `name` and returns its URL."""
    await admin_sql(server_url, f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str, log: Callable[[str], None]) -> None:
    """Drops database `name`; a failure is logged, not raised, as clean-up must not hide the run's
    own error."""
    try:
        # FORCE: a server that was just killed can leave sessions behind for a moment.
        await admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:
        log(f"could not drop database {name}: {exc}")


@contextlib.asynccontextmanager
async def scratch_database(
    server_url: str, name: str, *, keep: bool, log: Callable[[str], None]
) -> AsyncIterator[str]:
    """A new database `name` for the run (its URL), dropped at the end unless `keep`."""
    url = await create_database(server_url, name)
    try:
        yield url
    finally:
        if keep:
            log(f"kept database {name}")
        else:
            await drop_database(server_url, name, log)


async def migrate(database_url: str, service: str) -> None:
    """<service>-svc's migrations into the schema named after it, as the service runs them."""
    package = importlib.import_module(f"{service}_svc")
    db = Database(database_url, schema=service)
    try:
        await run_migrations(db, Path(package.__file__).parent / "migrations")
    finally:
        await db.dispose()


async def seed_sales(
    db_url: str, *, customers: int, opportunities: int, pipeline_customers: int | None = None
) -> dict[str, float]:
    """Customers (customer_bench.seed) and opportunities over them (pipeline_bench.seed: 200 owners,
    20 teams, open over four stages, won and lost, three currencies); `pipeline_customers`: how many
    customer ids the opportunities draw from (default `customers`). Answers the seconds each took."""
    import customer_bench  # imported here: both import this module
    import pipeline_bench

    seconds = {}
    t = time.perf_counter()
    await customer_bench.seed(db_url, customers, random.Random(42))
    seconds["customers"] = time.perf_counter() - t
    t = time.perf_counter()
    await pipeline_bench.seed(
        db_url,
        SimpleNamespace(
            owners=200,
            teams=20,
            customers=pipeline_customers or customers,
            opportunities=opportunities,
            seed_chunk=100_000,
        ),
    )
    seconds["opportunities"] = time.perf_counter() - t
    return seconds


@contextlib.contextmanager
def sales_stack(
    args, *, prefix: str, log: Callable[[str], None], load: Callable[[str], Awaitable[dict]]
) -> Iterator[dict[str, str]]:
    """What the console and dashboard benchmarks run on: a new database `crm_<prefix>_<hex>` on
    `args.database_url`, migrated (`crm migrate all`) and filled by `load(url)`, served by the gateway
    and customer-, pipeline- and activity-svc (`crm serve`, admin password `args.password`, rate limit
    off), events to RabbitMQ (`args.amqp_url`) under a throw-away namespace. Yields each one's base
    URL; drops the database (unless `args.keep`) and the broker objects after."""
    name = f"crm_{prefix}_{secrets.token_hex(4)}"
    db_url = with_database(args.database_url, name)
    namespace = f"bench-{prefix}-{uuid.uuid4().hex[:8]}."
    ports = {n: free_port() for n in ("gateway", "customer", "pipeline", "activity")}
    with scratch_dir(f"crm-{prefix}-", keep=False, log=log) as data:
        env = crm_env(
            ports,
            data_dir=data,
            amqp_url=args.amqp_url,
            namespace=namespace,
            admin_password=args.password,
            CRM_DATABASE_URL=db_url,
            CRM_GATEWAY_RATE_LIMIT_ENABLED="false",
        )
        asyncio.run(create_database(args.database_url, name))
        try:
            subprocess.run([sys.executable, "-m", "crm_gateway.cli", "migrate", "all"], env=env, check=True)
            log(f"loading into {name}")
            seconds = asyncio.run(load(db_url))
            log(f"loaded in { {k: round(v, 1) for k, v in seconds.items()} } s")
            with crm_processes(ports, env, data):
                yield {n: f"http://{HOST}:{port}" for n, port in ports.items()}
        finally:
            asyncio.run(delete_broker_objects(args.amqp_url, namespace, log))
            if args.keep:
                log(f"kept database {name}")
            else:
                asyncio.run(drop_database(args.database_url, name, log))


# --- broker ---------------------------------------------------------------------------------------


async def delete_broker_objects(
    amqp_url: str, namespace: str, log: Callable[[str], None], extra_consumers: Iterable[str] = ()
) -> None:
    """Deletes a run's queues (those of every consumer in the subscription catalogue, and of the
    extra consumers the run declared itself) and its exchanges. What cannot be deleted is logged,
    not raised, as clean-up must not hide the run's own error."""
    consumers = [*SUBSCRIPTIONS, *extra_consumers]
    queues = [f"{namespace}{c}.events{suffix}" for c in consumers for suffix in ("", ".dlq")]
    exchanges = [f"{namespace}crm.events", f"{namespace}crm.events.dlx"]
    try:
        connection = await aio_pika.connect(amqp_url)
    except Exception as exc:
        log(f"could not clean the broker: {exc}")
        return
    async with connection:
        for kind, name in [("queue", q) for q in queues] + [("exchange", e) for e in exchanges]:
            # A channel per object: a failed delete closes its channel.
            channel = await connection.channel()
            try:
                await (channel.queue_delete(name) if kind == "queue" else channel.exchange_delete(name))
            except Exception as exc:
                log(f"could not delete {kind} {name}: {exc}")
            finally:
                if not channel.is_closed:
                    await channel.close()


# --- CPU accounting (Linux /proc) -----------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot; idle and iowait are not busy."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS, sum(ticks) / CLOCK_TICKS


def cpu_sample(pid: int | None) -> tuple[float, float, float] | None:
    """(process CPU s, machine busy CPU s, machine total CPU s) so far; None off Linux."""
    try:
        proc = 0.0
        if pid is not None:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            proc = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return proc, *machine_cpu_seconds()
    except OSError:
        return None


def cpu_used(before, after, wall: float, who: str = "server") -> dict | None:
    """Cores used by the process (key `<who>_cores`) and by the whole machine over a phase
    (1.0 = one core busy the whole time)."""
    if before is None or after is None or wall <= 0:
        return None
    machine = (after[1] - before[1]) / (after[2] - before[2]) * (os.cpu_count() or 1)
    return {
        f"{who}_cores": round((after[0] - before[0]) / wall, 2),
        "machine_cores_busy": round(machine, 2),
        "machine_cores": os.cpu_count(),
    }


# --- results --------------------------------------------------------------------------------------


def write_results(document: dict, name: str, at: datetime | None = None) -> Path:
    """bench/results/<name><UTC time>.json (git-ignored); returns its path relative to the repo."""
    at = at or datetime.now(UTC)
    path = HERE / "results" / f"{name}{at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str))
    return path.relative_to(REPO)
