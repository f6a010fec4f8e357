"""Consistency tokens: a client reads its own writes across contexts.

A successful write whose transaction put events in the outbox answers `CRM-Consistency-Token`: an
opaque value naming those events (routing key and id). A request carrying one or more tokens is
answered by a service only once it has applied (its inbox holds) every named event it consumes,
waiting at most `CRM_CONSISTENCY_WAIT_SECONDS`; past that it answers anyway with
`CRM-Consistency: stale`. Events a service does not consume cost it no wait. A malformed token is a
400 INVALID_CONSISTENCY_TOKEN.

Token format (opaque to clients; versioned): `v1.` + base64url(`<routing key>=<event id hex>;...`).
A write producing more than MAX_EVENTS events (an import) answers no token.
"""

import asyncio
import base64
import binascii
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Protocol

import sqlalchemy as sa
from fastapi import FastAPI

# Where Starlette defines it (starlette.routing uses it without re-exporting it).
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common import methods
from crm_common.db import Database
from crm_common.errors import problem_response
from crm_common.events.tables import inbox
from crm_common.settings import ServiceSettings

TOKEN_HEADER = "CRM-Consistency-Token"
STALE_HEADER = "CRM-Consistency"
MAX_EVENTS = 200
MAX_TOKEN_CHARS = 16_384
POLL_SECONDS = 0.05

_written: ContextVar[list[tuple[str, uuid.UUID]] | None] = ContextVar("crm_events_written", default=None)
_incoming: ContextVar[tuple[str, ...]] = ContextVar("crm_consistency_incoming", default=())


class Written(Protocol):
    """An event a request produced (a CloudEvent, or one another service's token named)."""

    @property
    def routing_key(self) -> str: ...

    @property
    def id(self) -> uuid.UUID: ...


def note_written(events: Iterable[Written]) -> None:
    """Called by `add_events`: the current request's transaction produced these events."""
    bucket = _written.get()
    if bucket is not None:
        bucket.extend((e.routing_key, e.id) for e in events)


def outgoing_headers() -> dict[str, str]:
    """For a call to another service on behalf of the current request (the gateway's dashboard,
    views and action API): the tokens the request carried, so that service waits for them too."""
    values = _incoming.get()
    return {TOKEN_HEADER: ",".join(values)} if values else {}


def note_token(value: str | None) -> None:
    """A service this request called answered a token: the request's own response names its events."""
    if not value:
        return
    try:
        note_written(_Named(key, event_id) for key, event_id in decode([value]))
    except ValueError:
        pass  # not ours to judge: the caller gets the tokens it can read


class _Named:
    def __init__(self, routing_key: str, event_id: uuid.UUID):
        self.routing_key, self.id = routing_key, event_id


def encode(events: Iterable[tuple[str, uuid.UUID]]) -> str:
    raw = ";".join(f"{key}={event_id.hex}" for key, event_id in events).encode()
    return "v1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(values: Iterable[str]) -> list[tuple[str, uuid.UUID]]:
    """Every event the header values name (a value may hold several tokens, comma-separated).
    ValueError when one is not a token."""
    named = []
    for value in values:
        for token in value.split(","):
            token = token.strip()
            if not token.startswith("v1.") or len(token) > MAX_TOKEN_CHARS:
                raise ValueError(token)
            body = token[3:]
            try:
                raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
                for item in raw.split(";"):
                    key, _, hex_id = item.partition("=")
                    if not key:
                        raise ValueError(item)
                    named.append((key, uuid.UUID(hex=hex_id)))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(token) from exc
    return named


# Applied events wake waiting requests at once (same process); other replicas' are seen by polling.
_applied: dict[str, asyncio.Event] = {}


def notify_applied(consumer: str) -> None:
    """Called by the inbox dispatcher once an event's transaction committed."""
    event = _applied.pop(consumer, None)
    if event is not None:
        event.set()


async def wait_applied(db: Database, consumer: str, event_ids: set[uuid.UUID], timeout: float) -> bool:
    """Whether every event is in the consumer's inbox within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    pending = set(event_ids)
    while True:
        woken = _applied.setdefault(consumer, asyncio.Event())
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(inbox.c.event_id).where(inbox.c.consumer == consumer, inbox.c.event_id.in_(pending))
            )
            pending -= {row.event_id for row in rows}
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(woken.wait(), min(POLL_SECONDS * 4, remaining))
        except TimeoutError:
            pass


class ConsistencyMiddleware:
    """Waits for the events a request's tokens name (those this service consumes) before serving it,
    and gives a successful write that produced events its token."""

    def __init__(
        self, app: ASGIApp, owner: FastAPI, consumer: str, consumes: frozenset[str], wait_seconds: float
    ):
        self.app = app
        self.owner = owner
        self.consumer = consumer
        self.consumes = consumes
        self.wait_seconds = wait_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if methods.SCOPE_KEY in scope:  # MethodCheck runs first and has matched the path already
            allowed = scope[methods.SCOPE_KEY]
        else:
            allowed = methods.allowed_methods(scope["app"], get_route_path(scope))
        if allowed is None or scope["method"] not in allowed:
            # Not this app's to serve: the gateway passes a proxied request on to the service that
            # checks its tokens, and an undeclared method gets its 405 whatever the headers say.
            return await self.app(scope, receive, send)
        values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"crm-consistency-token"]
        stale = False
        if values:
            try:
                named = decode(values)
            except ValueError:
                response = problem_response(
                    Request(scope),
                    400,
                    "INVALID_CONSISTENCY_TOKEN",
                    f"{TOKEN_HEADER} must be a value a previous response gave, unchanged.",
                )
                return await response(scope, receive, send)
            wanted = {event_id for key, event_id in named if key in self.consumes}
            if wanted:
                db = self.owner.state.runtime.db
                stale = not await wait_applied(db, self.consumer, wanted, self.wait_seconds)
        bucket: list[tuple[str, uuid.UUID]] = []
        reset = _written.set(bucket)
        reset_incoming = _incoming.set(tuple(values))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if stale:
                    headers.append((b"crm-consistency", b"stale"))
                if bucket and message["status"] < 400 and len(bucket) <= MAX_EVENTS:
                    headers.append((b"crm-consistency-token", encode(bucket).encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _incoming.reset(reset_incoming)
            _written.reset(reset)


def install(app: FastAPI, settings: ServiceSettings, consumes: Iterable[str]) -> None:
    app.add_middleware(
        ConsistencyMiddleware,
        owner=app,
        consumer=settings.service_name,
        consumes=frozenset(consumes),
        wait_seconds=settings.consistency_wait_seconds,
    )
