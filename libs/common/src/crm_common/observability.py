"""Request ids, structured logs, Prometheus metrics and the health endpoints."""

import functools
import hmac
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any, TextIO

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Metric,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common import tracing
from crm_common.settings import MULTIPROCESS_DIR

REQUEST_ID_HEADER = "x-request-id"
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> Token[str | None]:
    return _request_id.set(value)


def reset_request_id(token: Token[str | None]) -> None:
    _request_id.reset(token)


HTTP_REQUESTS = Counter("crm_http_requests_total", "HTTP requests served", ["service", "method", "status"])
HTTP_LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class RequestContextMiddleware:
    """Pure ASGI (cheaper than BaseHTTPMiddleware): takes or makes the request id, echoes it on
    the response, and counts the request."""

    def __init__(self, app: ASGIApp, service: str):
        self.app = app
        self.service = service
        # The labelled series, looked up once each: `labels()` costs more than the increment.
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def _observe(self, method: str, status: int, seconds: float) -> None:
        counted = self._counted.get((method, status))
        if counted is None:
            counted = self._counted[method, status] = HTTP_REQUESTS.labels(self.service, method, str(status))
        timed = self._timed.get(method)
        if timed is None:
            timed = self._timed[method] = HTTP_LATENCY.labels(self.service, method)
        counted.inc()
        timed.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")[:128]
                break
        request_id = incoming or uuid.uuid4().hex
        token = _request_id.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            with tracing.server_span(scope, self.service) as span:
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    tracing.mark_response(span, scope, status_holder["status"])
        finally:
            self._observe(scope.get("method", ""), status_holder["status"], time.perf_counter() - started)
            _request_id.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id:
            entry["requestId"] = request_id
        trace_id = tracing.current_trace_id()
        if trace_id:
            entry["traceId"] = trace_id
        for key in ("service", "event_id", "event_type"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """One readable line per record for a person at a terminal, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = current_request_id()
        return f"{line} [{request_id}]" if request_id else line


def json_logs_wanted(setting: str | None, stream: TextIO | None = None) -> bool:
    """JSON unless a person is watching: `CRM_LOG_JSON` decides when set; otherwise JSON when
    stderr is not a terminal (a file, a pipe, a container's log collector)."""
    if setting is not None and setting.strip():
        return setting.strip().lower() not in ("false", "0", "no")
    stream = stream if stream is not None else sys.stderr
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        formatter = JsonFormatter()
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


READY_CHECK = Gauge(
    "crm_ready_check",
    "1 when a readiness check passes, 0 when it fails",
    ["service", "check"],
    multiprocess_mode="livemostrecent",
)


def health_router(
    ready_checks: Callable[[], Awaitable[dict[str, bool]]],
    *,
    service: str = "service",
    essential: tuple[str, ...] = ("database",),
    refresh_metrics: Callable[[], Awaitable[None]] | None = None,
    metrics_token: str | None = None,
) -> APIRouter:
    """`/readyz` fails (503) only when an `essential` check fails: the process cannot serve requests.
    Any other failing check (the broker: the outbox keeps writes working without it) answers 200 with
    `degraded`, so a broker outage never takes every replica out of rotation."""
    router = APIRouter(tags=["health"])

    # Operational endpoints: not part of the public API document.
    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        checks = await ready_checks()
        for name, passed in checks.items():
            READY_CHECK.labels(service, name).set(1 if passed else 0)
        if not all(passed for name, passed in checks.items() if name in essential):
            status = "unavailable"
        elif all(checks.values()):
            status = "ok"
        else:
            status = "degraded"
        response.status_code = 503 if status == "unavailable" else 200
        return {"status": status, "checks": checks}

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if metrics_token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), metrics_token.encode()):
                return Response(
                    "metrics need the bearer token set in CRM_METRICS_TOKEN\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                    media_type="text/plain",
                )
        if refresh_metrics is not None:
            try:
                await refresh_metrics()
            except Exception:  # a scrape must still answer with what it has
                logging.getLogger("crm.metrics").warning("refreshing metrics failed", exc_info=True)
        return Response(generate_latest(shared_registry() or REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


@functools.cache
def shared_registry() -> CollectorRegistry | None:
    """The registry that reads every process's metrics, where processes share them (the requests a
    serving worker served, the events the main process consumed); else None."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    registry.register(SharingProcesses(os.environ[MULTIPROCESS_DIR]))
    return registry


class SharingProcesses(Collector):
    """The `process_*` metrics (CPU, memory, open files, start time) of each live process writing to
    the shared metrics `folder`, labelled with its `pid`. The multiprocess collector cannot add these
    up, and a scrape reaches one process only, so they are read from /proc for each (prometheus_client's
    ProcessCollector; nothing is reported where /proc is missing)."""

    def __init__(self, folder: str):
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self._live_pids():
            for family in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()

    def _live_pids(self) -> list[int]:
        # Each process's files are named <kind>_<pid>.db; a dead process's counters stay behind.
        pids = {
            int(pid)
            for _, _, pid in (p.stem.rpartition("_") for p in Path(self.folder).glob("*.db"))
            if pid.isdigit()
        }
        return sorted(pid for pid in pids if Path(f"/proc/{pid}/stat").exists())


def install_observability(app: FastAPI, service: str) -> None:
    app.add_middleware(RequestContextMiddleware, service=service)
