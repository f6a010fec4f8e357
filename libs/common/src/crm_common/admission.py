"""Admission control: serve at capacity, refuse the excess fast.

Past its capacity a service that accepts every request gets slower for all of them, and its
throughput falls (connections, locks and the event loop are shared by more and more work). Each
process therefore runs at most `limit` requests at a time per budget (reads, writes), lets a few more
wait their turn in arrival order for a short while, and answers the rest at once with 503
`OVERLOADED` and `Retry-After`, which tells clients (and the generated SDK's users) to back off.
Health and metrics endpoints are never refused. 429 stays the per-credential rate limit.
"""

import asyncio
import functools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from fastapi import FastAPI
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_common.errors import PROBLEM_JSON, Problem
from crm_common.observability import current_request_id
from crm_common.settings import ServiceSettings

EXEMPT = ("/healthz", "/readyz", "/metrics")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Summed over the processes where several share the metrics (crm_common.observability).
IN_FLIGHT = Gauge(
    "crm_admission_in_flight", "Requests being served", ["service", "budget"], multiprocess_mode="livesum"
)
QUEUED = Gauge(
    "crm_admission_queued", "Requests waiting for a turn", ["service", "budget"], multiprocess_mode="livesum"
)
REFUSED = Counter(
    "crm_admission_refused_total", "Requests refused as overload", ["service", "budget", "reason"]
)
QUEUE_WAIT = Histogram(
    "crm_admission_queue_wait_seconds",
    "Time admitted requests waited for a turn",
    ["service", "budget"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class Overloaded(Exception):
    def __init__(self, reason: str):
        self.reason = reason


# Weight of the newest request's duration in the running mean of how long a request holds its slot.
SERVICE_TIME_WEIGHT = 0.1


@dataclass
class Budget:
    """At most `limit` at once; up to `queue` more wait (first come, first served) for at most
    `max_wait` seconds.

    A request whose turn would come later than `target_wait` (`max_wait` when there is no target) is
    refused on arrival, not after waiting in vain, so refusals stay immediate and the queue holds
    only what will be served in time: its wait is its place in the queue times the running mean of
    how long a request holds a slot, over `limit` slots. The bound is on the estimate, not on how long
    the head has waited: at 4x capacity a queue admitted while its head was young holds four times
    `target_wait` of work, and every request in it was served late (bench/overload.py: served p99
    2.4 s with a 0.5 s target). While the request at the head of the queue has waited longer than
    `target_wait` the estimate is behind (requests got slower), and no one else joins (CoDel's idea:
    a queue that stays long is shed). `max_wait` is the most a request waits, estimate or not.
    """

    name: str
    service: str
    limit: int
    queue: int
    max_wait: float
    target_wait: float | None = None
    in_flight: int = 0
    service_time: float = 0.0
    # A waiter's future is resolved (with None) when release() hands it the slot.
    _waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    _since: dict[asyncio.Future[None], float] = field(default_factory=dict)

    def expected_wait(self) -> float:
        """How long a request arriving now would wait for its turn, from the running mean."""
        return (len(self._waiters) + 1) * self.service_time / self.limit

    async def acquire(self) -> None:
        if self.in_flight < self.limit and not self._waiters:
            self._admit()
            return
        if len(self._waiters) >= self.queue:
            self._refuse("queue_full")
        if self.expected_wait() > (self.max_wait if self.target_wait is None else self.target_wait):
            self._refuse("expected_wait")
        started = time.perf_counter()
        if self.target_wait is not None and self._waiters:
            if started - self._since.get(self._waiters[0], started) > self.target_wait:
                self._refuse("sustained_overload")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._since[waiter] = started
        QUEUED.labels(self.service, self.name).set(len(self._waiters))
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter  # resolved by release(), which has already counted us in
        except TimeoutError:
            if not (waiter.done() and not waiter.cancelled()):  # else our turn came as time ran out
                self._refuse("queue_timeout")
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the turn was handed to us as we were cancelled: pass it on
            raise
        finally:
            self._since.pop(waiter, None)
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            QUEUED.labels(self.service, self.name).set(len(self._waiters))
        QUEUE_WAIT.labels(self.service, self.name).observe(time.perf_counter() - started)

    def release(self, held: float | None = None) -> None:
        """Gives the slot to the next in line; `held`: how long the request held it (seconds)."""
        if held is not None:
            self.service_time += SERVICE_TIME_WEIGHT * (held - self.service_time)
        self.in_flight -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._admit()
                waiter.set_result(None)
                break
        IN_FLIGHT.labels(self.service, self.name).set(self.in_flight)

    def _admit(self) -> None:
        self.in_flight += 1
        IN_FLIGHT.labels(self.service, self.name).set(self.in_flight)

    def _refuse(self, reason: str) -> NoReturn:
        REFUSED.labels(self.service, self.name, reason).inc()
        raise Overloaded(reason)


def _refusal_parts() -> tuple[bytes, bytes, bytes]:
    """The refusal's problem document split around its two per-request members (`instance`,
    `requestId`): the same document `problem_response` builds, encoded once rather than per refusal.
    Under overload refusals are most of what a process answers, and each one's CPU is taken from the
    requests it serves (bench/overload.py)."""
    template = Problem(
        title="Service Unavailable",
        status=503,
        detail="The service is at capacity; retry after the time given.",
        instance="\x00instance\x00",
        code="OVERLOADED",
        requestId="\x00request\x00",
    ).model_dump(exclude_none=True)
    encoded = json.dumps(template, separators=(",", ":")).encode()
    head, rest = encoded.split(b'"\\u0000instance\\u0000"')
    middle, tail = rest.split(b'"\\u0000request\\u0000"')
    return head, middle, tail


_REFUSAL_HEAD, _REFUSAL_MIDDLE, _REFUSAL_TAIL = _refusal_parts()


async def refuse(scope: Scope, send: Send, retry_after: bytes) -> None:
    """503 OVERLOADED with Retry-After, sent without building a Request or a Response."""
    request_id = current_request_id()  # set by the request-id middleware, which runs first
    body = b"".join(
        (
            _REFUSAL_HEAD,
            json.dumps(scope["path"], ensure_ascii=False).encode(),
            _REFUSAL_MIDDLE,
            json.dumps(request_id).encode() if request_id is not None else b"null",
            _REFUSAL_TAIL,
        )
    )
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", retry_after),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AdmissionMiddleware:
    """Budgets `read` and `write` for what this process serves itself. `upstream_of` (the gateway's):
    the name of the service a path is passed on to, or None; those requests are admitted by budgets
    of their own per service (`<service>:read`, `<service>:write`), as small as the service's, so the
    excess is refused here, on arrival, rather than proxied to be refused there (a refusal that
    crosses a hop costs both processes a request, and the gateway's loop is shared by everything it
    serves)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        read_limit: int,
        write_limit: int,
        queue: int,
        max_wait: float,
        target_wait: float | None = None,
        retry_after: int = 1,
        upstream_of: Callable[[str], str | None] | None = None,
        upstream_read_limit: int = 0,
        upstream_write_limit: int = 0,
    ):
        self.app = app
        self.retry_after = str(retry_after).encode()
        self.budgets = {
            "read": Budget("read", service, read_limit, queue, max_wait, target_wait),
            "write": Budget("write", service, write_limit, queue, max_wait, target_wait),
        }
        self.upstream_of = upstream_of if upstream_read_limit > 0 and upstream_write_limit > 0 else None
        self._upstream_budget = functools.partial(Budget, service=service, queue=queue, max_wait=max_wait)
        self._upstream_limits = {"read": upstream_read_limit, "write": upstream_write_limit}
        self._target_wait = target_wait

    def budget_for(self, scope: Scope) -> Budget:
        kind = "read" if scope["method"] in READ_METHODS else "write"
        upstream = self.upstream_of(scope["path"]) if self.upstream_of is not None else None
        if upstream is None:
            return self.budgets[kind]
        name = f"{upstream}:{kind}"
        budget = self.budgets.get(name)
        if budget is None:
            budget = self.budgets[name] = self._upstream_budget(
                name=name, limit=self._upstream_limits[kind], target_wait=self._target_wait
            )
        return budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            return await self.app(scope, receive, send)
        budget = self.budget_for(scope)
        try:
            await budget.acquire()
        except Overloaded:
            return await refuse(scope, send, self.retry_after)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            budget.release(time.perf_counter() - started)


def install_admission(
    app: FastAPI, settings: ServiceSettings, upstream_of: Callable[[str], str | None] | None = None
) -> None:
    """Inside the request-id middleware (installed after this), so refusals carry the request id.
    `upstream_of`: the gateway's routing (see AdmissionMiddleware), with the settings'
    `admission_upstream_read_limit` / `admission_upstream_write_limit`."""
    app.add_middleware(
        AdmissionMiddleware,
        service=settings.service_name,
        read_limit=settings.admission_read_limit,
        write_limit=settings.admission_write_limit,
        queue=settings.admission_queue,
        max_wait=settings.admission_max_wait_seconds,
        target_wait=settings.admission_target_wait_seconds,
        upstream_of=upstream_of,
        upstream_read_limit=getattr(settings, "admission_upstream_read_limit", 0),
        upstream_write_limit=getattr(settings, "admission_upstream_write_limit", 0),
    )
