"""`crm`: run the platform.

crm up [--workers N]        the whole CRM in one process (embedded default), or N on N cores
crm down                    stop the `crm up` running from CRM_DATA_DIR
crm serve <service> [--workers N]   one service (or the gateway) as its own process(es) (distributed mode)
crm migrate <service>|all   bring databases to the latest schema
crm makemigrations <service> -m MESSAGE   autogenerate a migration (developers)
crm demo [--url URL]        load a sample company into a running CRM through its API
crm events dlq list|show|replay|purge     dead letters: events a consumer could not apply
crm events outbox list|replay SERVICE     events a service has not sent; publish events again
crm backup DEST             a consistent copy of the embedded default's databases (and keys)
crm restore SRC             put a backup back (the CRM must be stopped)
crm admin reset-password USER             a new password for a user (the admin who forgot theirs)
"""

import argparse
import asyncio
import importlib
import importlib.resources
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import uvicorn
from crm_common import tracing
from crm_common.db import Database
from crm_common.settings import MULTIPROCESS_DIR, PlatformSettings, ServiceSettings

# Not imported here: what imports prometheus_client (crm_common.app, .migrations, .observability,
# the services), which `crm up` must not before it has chosen where the metrics go (`_share_metrics`).

NAMES = ("gateway", "customer", "pipeline", "activity", "ticket", "campaign", "webhook")


def _modules(name: str) -> tuple[ModuleType, type[ServiceSettings], str]:
    if name == "gateway":
        from crm_gateway.settings import GatewaySettings

        return importlib.import_module("crm_gateway.app"), GatewaySettings, "crm_gateway"
    package = f"{name}_svc"
    settings = importlib.import_module(f"{package}.settings").Settings
    return importlib.import_module(f"{package}.app"), settings, package


def _migrations_dir(package: str) -> Path:
    return Path(str(importlib.resources.files(package) / "migrations"))


def _database(settings: ServiceSettings) -> Database:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.resolved_database_url(), schema=settings.schema_name)


async def _migrate(names: list[str]) -> None:
    from crm_common.migrations import migrate

    for name in names:
        _, settings_cls, package = _modules(name)
        db = _database(settings_cls())
        try:
            await migrate(db, _migrations_dir(package))
            print(f"{name}: migrated")
        finally:
            await db.dispose()


async def _makemigrations(name: str, message: str) -> None:
    from crm_common.migrations import make_revision

    _, settings_cls, package = _modules(name)
    db = _database(settings_cls())
    try:
        await make_revision(db, _migrations_dir(package), message)
    finally:
        await db.dispose()


def _check_data_dir(data_dir: Path, command: str) -> None:
    """A data folder that cannot be used is said in one line, before anything else touches it."""
    problem = None
    if data_dir.exists() and not data_dir.is_dir():
        problem = "it is a file, not a folder"
    else:
        probe = data_dir / f".crm-probe-{os.getpid()}"
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            problem = exc.strerror or str(exc)
    if problem:
        sys.exit(f"crm {command}: the data folder {data_dir} cannot be used: {problem} (CRM_DATA_DIR)")


def _new_password(generate: bool, email: str) -> str:
    import getpass
    import secrets

    if generate:
        return secrets.token_urlsafe(18)
    if sys.stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != password:
            sys.exit("crm admin: the two passwords differ; nothing changed")
    else:
        password = sys.stdin.readline().rstrip("\n")
    from crm_gateway.identity.passwords import password_problems

    # The rule every password follows (docs/api-guide.md, "Sessions, keys and passwords").
    problems = password_problems(password, email=email)
    if len(password) > 256:
        problems.append("longer than 256 characters")
    if problems:
        sys.exit(f"crm admin: the password is refused ({'; '.join(problems)}); nothing changed")
    return password


async def _reset_password(email: str, *, generate: bool) -> None:
    from crm_gateway.identity.service import reset_password
    from crm_gateway.settings import GatewaySettings

    password = _new_password(generate, email)
    settings = GatewaySettings()
    db = Database(settings.resolved_database_url(), schema=settings.schema_name)
    try:
        async with db.transaction() as session:
            found = await reset_password(session, email, password)
    except Exception as exc:
        sys.exit(
            f"crm admin: cannot reach the gateway's users ({str(exc).splitlines()[0]}); has the CRM run here?"
        )
    finally:
        await db.dispose()
    if not found:
        sys.exit(f"crm admin: no user {email}; nothing changed")
    print(f"Password of {email} changed." + (f" New password: {password}" if generate else ""))


def _backup_or_restore(args: argparse.Namespace, platform: PlatformSettings) -> None:
    from crm_gateway import backup

    if platform.database_url:
        sys.exit(
            f"crm {args.command}: CRM_DATABASE_URL is set; back up Postgres with pg_dump / pg_restore "
            '(docs/operations.md, "Postgres")'
        )
    data_dir = platform.data_dir
    try:
        if args.command == "backup":
            result = backup.backup(data_dir, args.dest)
            databases = sum(1 for f in result.files if "service" in f)
            print(
                f"Backed up {databases} database(s) from {data_dir} to {args.dest} "
                f"(writes paused {result.paused_ms:.0f} ms); see {args.dest / backup.MANIFEST}"
            )
        else:
            aside = backup.restore(args.src, data_dir)
            print(f"Restored {args.src} into {data_dir}.")
            if aside is not None:
                print(f"The files it replaced are in {aside}.")
            print("Start the CRM (crm up): it migrates them if they come from an older release.")
    except backup.BackupError as exc:
        sys.exit(f"crm {args.command}: {exc}")


# proxy_headers=False: X-Forwarded-For is the gateway's to judge (CRM_GATEWAY_TRUSTED_PROXIES);
# uvicorn's default believes it from 127.0.0.1, so any local client could pick its address.
UVICORN_OPTIONS: dict[str, Any] = {"log_config": None, "access_log": False, "proxy_headers": False}


def _observe(platform: PlatformSettings, name: str) -> None:
    from crm_common.observability import configure_logging, json_logs_wanted

    configure_logging(platform.log_level, json_logs=json_logs_wanted(platform.log_json))
    # Off unless an OTLP collector is named (crm_common.tracing).
    tracing.configure(name, endpoint=platform.otlp_endpoint or None)


# `crm serve --workers N`: the service each worker process runs (uvicorn starts them afresh).
SERVE_SERVICE = "CRM_SERVE_WORKERS_SERVICE"


def serve_worker_app() -> Any:
    """The app factory of `crm serve --workers N`'s worker processes: logging and tracing as the
    command sets them, then the service's app."""
    service = os.environ[SERVE_SERVICE]
    _observe(PlatformSettings(), f"crm-{service}")
    module, _, _ = _modules(service)
    return module.create_app()


def _ready_to_start(args: argparse.Namespace, platform: PlatformSettings, argv: list[str] | None) -> int:
    """`crm up`'s checks before anything starts; returns how many serving workers to run."""
    from crm_gateway import runfile
    from crm_gateway.backup import BackupError, check_databases

    workers: int = default_workers() if args.workers is None else args.workers
    if workers < 0:
        sys.exit("crm up: --workers must be 0 or more")
    data_dir = platform.data_dir
    if (pid := runfile.running_pid(data_dir)) is not None:
        # Two processes on one set of SQLite files would each relay and consume the same events.
        sys.exit(f"A CRM (process {pid}) is already running from {data_dir}; `crm down` stops it.")
    try:
        check_databases(data_dir)
    except BackupError as exc:
        sys.exit(f"crm up: {exc}")
    if workers > 0 and not os.environ.get(MULTIPROCESS_DIR):
        _share_metrics(data_dir, argv)
    return workers


def _share_metrics(data_dir: Path, argv: list[str] | None) -> None:
    """Sets the processes' shared metrics folder (crm_common.observability), emptied of the last
    run's files. It must be set before the metrics exist: where something has imported
    prometheus_client already, this starts afresh with it set (the same process id, a new
    interpreter)."""
    metrics_dir = data_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR] = str(metrics_dir.resolve())
    if "prometheus_client" in sys.modules:
        args = sys.argv[1:] if argv is None else argv
        os.execv(sys.executable, [sys.executable, "-m", "crm_gateway.cli", *args])


def default_workers() -> int:
    """`crm up`'s serving workers when CRM_WORKERS is unset: one beside the main process where there
    are two cores to share (requests on one, events on the other), none on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if cores >= 2 else 0


def _serve_only(serving: str) -> None:
    """A serving worker of `crm up --workers N` (crm_gateway.workers): `serving` is the main process's
    id and this worker's end of its socket pair."""
    from crm_common.app import settle_heap

    from crm_gateway import workers
    from crm_gateway.embedded import create_embedded_app

    main_process, fd = (int(part) for part in serving.split(","))
    link = workers.MainProcessLink(main_process, fd)
    # Imported above while the main process starts; built once it has.
    if not link.wait_for_start():
        sys.exit(f"crm up: the main process ({main_process}) stopped before it started")
    app = create_embedded_app(link=link)
    settle_heap()
    workers.HandedServer(uvicorn.Config(app, **UVICORN_OPTIONS), link).run()


def main(argv: list[str] | None = None) -> None:
    platform = PlatformSettings()
    parser = argparse.ArgumentParser(prog="crm", description="Run the CRM platform.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run every service and the gateway in one process (embedded default)")
    up.add_argument("--host", default=platform.host)
    up.add_argument("--port", type=int, default=platform.port)
    up.add_argument(
        "--workers",
        type=int,
        default=platform.workers,
        help="processes serving requests beside the main one, which relays and consumes the events; "
        "0: one process does it all (default: CRM_WORKERS, else 1 with two cores or more, else 0; "
        "docs/operations.md, Scaling)",
    )
    # Internal: how the main process starts a serving worker (its process id, its socket pair's end).
    up.add_argument("--serving", help=argparse.SUPPRESS)
    sub.add_parser("down", help="stop the CRM that `crm up` runs from CRM_DATA_DIR")
    serve = sub.add_parser("serve", help="run one service or the gateway (distributed mode)")
    serve.add_argument("service", choices=NAMES)
    serve.add_argument("--host", default=platform.host)
    serve.add_argument("--port", type=int, default=platform.port)
    serve.add_argument(
        "--workers",
        type=int,
        default=platform.workers or 1,
        help="processes of this service on the port, each a full replica (Postgres only; default: "
        "CRM_WORKERS, else 1)",
    )
    mig = sub.add_parser("migrate", help="migrate databases to the latest schema")
    mig.add_argument("service", choices=(*NAMES, "all"))
    mk = sub.add_parser("makemigrations", help="autogenerate a migration from model changes")
    mk.add_argument("service", choices=NAMES)
    mk.add_argument("-m", "--message", required=True)
    sub.add_parser("asyncapi", help="print the event catalogue as an AsyncAPI 3.0 document")
    demo = sub.add_parser("demo", help="load a sample company into a running CRM through its API")
    demo.add_argument("--url", default=platform.url)
    demo.add_argument("--admin-email", default=platform.admin_email)
    demo.add_argument(
        "--admin-password",
        default=platform.admin_password,
        help="the admin's password (default: CRM_ADMIN_PASSWORD)",
    )
    bk = sub.add_parser("backup", help="back up the embedded default's databases into a new folder")
    bk.add_argument("dest", type=Path)
    rs = sub.add_parser("restore", help="restore a backup made by `crm backup` (the CRM must be stopped)")
    rs.add_argument("src", type=Path)
    admin = sub.add_parser("admin", help="administer users from the command line")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    reset = admin_sub.add_parser(
        "reset-password",
        help="set a user's password: asked twice at a terminal, else read from the first line of stdin",
    )
    reset.add_argument("user", help="the user's email")
    reset.add_argument("--generate", action="store_true", help="generate one and print it")
    events = sub.add_parser(
        "events",
        help="operate on events: dead letters (crm events dlq --help), outboxes (crm events outbox --help)",
    )
    if (sys.argv[1:] if argv is None else argv)[:1] != ["up"]:
        # Their parsers import the event machinery, which `crm up` must not before it has chosen
        # where the metrics go (`_share_metrics`).
        from crm_gateway import dlq, outbox

        outbox.add_commands(dlq.add_commands(events))
    args = parser.parse_args(argv)
    if args.command == "demo":
        from crm_gateway import demo as demo_data

        if not args.admin_password:
            sys.exit("crm demo: give the admin's password (--admin-password or CRM_ADMIN_PASSWORD)")
        try:
            loaded = asyncio.run(demo_data.load(args.url, args.admin_email, args.admin_password))
        except demo_data.DemoError as exc:
            sys.exit(f"crm demo: {exc}")
        print(demo_data.report(loaded, args.url), flush=True)
        return
    if args.command == "asyncapi":
        from crm_common.contracts.catalogue import asyncapi_document

        print(json.dumps(asyncapi_document(), indent=2))
        return

    if args.command == "down":
        from crm_gateway import runfile

        print(runfile.stop(platform.data_dir), flush=True)
        return

    # The embedded default keeps everything there; distributed processes may run on a read-only
    # file system (Kubernetes), their data in Postgres.
    sqlite = not platform.database_url
    if args.command in ("up", "backup", "restore") or (
        sqlite and args.command in ("migrate", "events", "admin")
    ):
        _check_data_dir(platform.data_dir, args.command)
    if args.command in ("backup", "restore"):
        _backup_or_restore(args, platform)
        return

    if args.command == "up" and not args.serving:
        workers = _ready_to_start(args, platform, argv)
    _observe(platform, "crm" if args.command == "up" else f"crm-{getattr(args, 'service', 'cli')}")

    if args.command == "admin":
        asyncio.run(_reset_password(args.user, generate=args.generate))
        return
    if args.command == "events":
        command = outbox.run if args.events_command == "outbox" else dlq.run
        try:
            status = asyncio.run(command(args))
        except dlq.DlqError as exc:
            sys.exit(f"crm events: {exc}")
        sys.exit(status)
    if args.command == "migrate":
        asyncio.run(_migrate(list(NAMES) if args.service == "all" else [args.service]))
    elif args.command == "makemigrations":
        asyncio.run(_makemigrations(args.service, args.message))
    elif args.command == "up":
        from crm_common.app import settle_heap

        from crm_gateway.embedded import create_embedded_app

        if args.serving:
            _serve_only(args.serving)
            return
        # Every process reads it: above 0 the SQLite files have writers in several processes, and
        # in-memory limits are shared out between the serving workers (crm_gateway.ratelimit).
        os.environ["CRM_WORKERS"] = str(workers)
        if workers == 0:
            app = create_embedded_app()
            settle_heap()
            print(f"CRM is starting on http://{args.host}:{args.port} (API docs at /docs)", flush=True)
            uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)
            return
        from crm_gateway.workers import ServingWorkers

        try:
            serving = ServingWorkers(workers, args.host, args.port)
        except OSError as exc:
            sys.exit(f"crm up: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        serving.spawn()
        app = create_embedded_app(workers=serving)
        settle_heap()
        print(
            f"CRM is starting on http://{args.host}:{args.port}, {workers} serving worker"
            f"{'s' if workers > 1 else ''} beside the events' process (API docs at /docs)",
            flush=True,
        )
        # This process serves no request: its uvicorn runs the lifespan, it hands the connections over.
        uvicorn.Server(uvicorn.Config(app, **UVICORN_OPTIONS)).run(sockets=[])
    elif args.command == "serve":
        from crm_common.app import settle_heap

        module, _, _ = _modules(args.service)
        if args.workers < 1:
            sys.exit("crm serve: --workers must be at least 1")
        if args.workers > 1:
            if not platform.database_url:
                sys.exit(
                    "crm serve: --workers needs Postgres (CRM_DATABASE_URL); on SQLite, `crm up --workers`"
                )
            # Replicas in one place: each worker relays, consumes and runs the jobs, safely beside
            # the others (docs/operations.md, Scaling); the gateway shares its in-memory limits out.
            os.environ["CRM_WORKERS"] = str(args.workers)
            os.environ[SERVE_SERVICE] = args.service
            uvicorn.run(
                "crm_gateway.cli:serve_worker_app",
                factory=True,
                workers=args.workers,
                host=args.host,
                port=args.port,
                **UVICORN_OPTIONS,
            )
            return
        app = module.create_app()
        settle_heap()
        uvicorn.run(app, host=args.host, port=args.port, **UVICORN_OPTIONS)


if __name__ == "__main__":
    main()
