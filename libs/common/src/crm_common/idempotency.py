"""`Idempotency-Key` for retried writes: the same key and body return the first response; the same
key with another body is a 422; a retry while the first attempt still runs is a 409.

Keys are per caller (the verified token's subject) and kept for 24 hours.

The outcome is stored in the request's own transaction. The middleware claims the key (an in-flight
row, in a short transaction of its own) and publishes the claim in a context variable; the request's
session (`crm_common.app.db_session`) opens its transaction for the claim and, when the endpoint
returns, leaves it open. The middleware holds the rendered response back, writes it as the key's
outcome in that same transaction, commits, and only then sends it. So a response a client received
is always replayable, and a request that was not answered either committed together with its
outcome or changed nothing. A request that wrote nothing (rejected, failed, rolled back) has its 4xx
remembered afterwards, and a 5xx frees the key; losing either in a crash is harmless, since the retry
then simply runs.
(An endpoint that writes outside the request's session, in transactions of its own, cannot have
its outcome in them: it is recorded after the response like a rejection, and such an endpoint must
be safe to run again; the only one, the import, is marked streamed.)

A claim whose process died stays in flight: the embedded default (SQLite, one process) frees them all
at start (`release_abandoned`); elsewhere a retry takes the key over once the claim is older than
the LEASE. A takeover cannot duplicate a change: the old claim can no longer store its outcome, so
its transaction would roll back.

Streamed endpoints (`streamed=` paths, e.g. the customer import) are never buffered: the body passes
through while a running digest is kept, and the final outcome is stored after the response, with the
digest of the whole body, so a retry with the same key and the same file replays it (its body is read
through again to compare, holding none of it). Such an endpoint commits in several transactions of
its own, so it must be safe to run again after a crash (the import upserts by email); a live one
renews its lease, so it is never taken over while it runs.
"""

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar

import anyio
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common import idempotency_store as store
from crm_common.db import Database
from crm_common.errors import ProblemError, overloaded, problem_response

# Re-exported: the app factory, the migration runner and the services' migrations reach the store
# through this module.
from crm_common.idempotency_store import create_idempotency_table_v1 as create_idempotency_table_v1
from crm_common.idempotency_store import drop_idempotency_table_v1 as drop_idempotency_table_v1
from crm_common.idempotency_store import keys as keys
from crm_common.idempotency_store import metadata as metadata
from crm_common.idempotency_store import release_abandoned as release_abandoned

log = logging.getLogger("crm.idempotency")
HEADER = b"idempotency-key"
METHODS = {"POST", "PATCH", "PUT", "DELETE"}
# Response headers worth replaying; the rest (dates, request ids) belong to the new response.
REPLAYED_HEADERS = {b"content-type", b"location", b"etag"}
# A streamed endpoint's response is passed on as it comes; at most this much is kept for replay
# (an import's report is a few kilobytes). Bigger, and the key is freed instead.
MAX_STREAMED_OUTCOME = 1 << 20

_current: ContextVar["Claim | None"] = ContextVar("crm_idempotency_claim", default=None)


class _Abandoned(Exception):
    """Passed into the request's transaction to roll it back."""


class Claim:
    """A key held by the current request; carries the request's transaction from the session
    dependency (which opens it) to the middleware (which commits it with the outcome)."""

    def __init__(self, db: Database, held: store.Held):
        self.db = db
        self.held = held
        self.used = False
        self._open: tuple[AsyncExitStack, AsyncSession] | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The request's write transaction: rolled back on an error, left open on success."""
        self.used = True
        stack = AsyncExitStack()
        session = await stack.enter_async_context(self.db.transaction())
        try:
            yield session
            # A failing write (a stale version, a constraint) surfaces here, inside the request and
            # through the app's error handlers, rather than at the commit in the middleware.
            await session.flush()
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._open = (stack, session)

    @property
    def is_open(self) -> bool:
        return self._open is not None

    async def commit_with(self, outcome: store.Outcome) -> bool:
        """Store the outcome in the request's transaction and commit both; False (rolled back) if
        the claim was taken over meanwhile."""
        if self._open is None:
            raise RuntimeError("commit_with() needs the claim's transaction open (see is_open)")
        stack, session = self._open
        self._open = None
        try:
            stored = await store.store_in(session, self.held, outcome)
            if not stored:
                raise _Abandoned()
        except BaseException as exc:
            await stack.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, _Abandoned):
                return False
            raise
        await stack.aclose()
        return True

    async def rollback(self) -> None:
        if self._open is not None:
            stack, _ = self._open
            self._open = None
            exc = _Abandoned()
            await stack.__aexit__(type(exc), exc, None)


def claim_for(db: Database) -> Claim | None:
    """The claim of the current request on `db` whose transaction is still to be opened."""
    claim = _current.get()
    if claim is None or claim.db is not db or claim.used:
        return None
    return claim


def _header(scope: Scope, name: bytes) -> str | None:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers", ())
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def _request_line(scope: Scope) -> bytes:
    return b"\n".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b"")])


def _hash(*parts: bytes) -> str:
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


class _Capture:
    """The response's status, replayed headers and body (up to `limit` bytes)."""

    def __init__(self, limit: int | None = None):
        self.status = 500
        self.headers: list[list[str]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.messages: list[Message] = []

    def add(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in message.get("headers", [])
                if k.lower() in REPLAYED_HEADERS
            ]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.limit is None or self.size <= self.limit:
                self.chunks.append(chunk)

    @property
    def overflowed(self) -> bool:
        return self.limit is not None and self.size > self.limit

    def outcome(self) -> store.Outcome:
        return store.Outcome(self.status, self.headers, b"".join(self.chunks))


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, *, streamed: Iterable[str] = ()):
        self.app = app
        self.streamed = frozenset(streamed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            return await self.app(scope, receive, send)
        key = _header(scope, HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        if not 1 <= len(key) <= 255:
            return await problem_response(
                Request(scope), 422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 255 characters."
            )(scope, receive, send)
        principal = self._principal(scope)
        if principal is None:  # no valid token: the endpoint will answer 401; nothing to remember
            return await self.app(scope, receive, send)
        db: Database = scope["app"].state.runtime.db
        if scope["path"] in self.streamed:
            return await self._streamed(scope, receive, send, db, principal, key)
        return await self._transactional(scope, receive, send, db, principal, key)

    async def _transactional(
        self, scope: Scope, receive: Receive, send: Send, db: Database, principal: str, key: str
    ) -> None:
        body = await _read_body(receive)
        try:
            claimed = await store.claim(db, principal, key, _hash(_request_line(scope), body))
        except Exception as exc:
            return await _refused(scope, receive, send, exc)
        if isinstance(claimed, store.Outcome):
            return await _replay(send, claimed)

        claim = Claim(db, claimed)
        held = _Capture()

        async def hold(message: Message) -> None:
            held.messages.append(message)
            held.add(message)

        token = _current.set(claim)
        try:
            await self.app(scope, _body_then(body, receive), hold)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await claim.rollback()
                await _quietly(store.release(db, claimed), key)
            raise
        finally:
            _current.reset(token)

        outcome = held.outcome()
        # Shielded: once the change is committed, its outcome is too, even if the caller went away.
        with anyio.CancelScope(shield=True):
            if claim.is_open:
                try:
                    committed = await claim.commit_with(outcome)
                except Exception:
                    log.exception("could not commit the request with idempotency key %r", key)
                    await _quietly(store.release(db, claimed), key)
                    return await problem_response(
                        Request(scope),
                        500,
                        "INTERNAL_ERROR",
                        "The change could not be saved; nothing was done.",
                    )(scope, receive, send)
                if not committed:
                    return await _problem(scope, receive, send, store.in_use())
            elif outcome.status >= 500:
                await _quietly(store.release(db, claimed), key)
            else:
                # Nothing was written in a transaction of this request: remember the answer (a
                # rejection) so a retry gets the same; if this is lost, the retry runs again.
                await _quietly(store.store(db, claimed, outcome), key)
        for message in held.messages:
            await send(message)

    async def _streamed(
        self, scope: Scope, receive: Receive, send: Send, db: Database, principal: str, key: str
    ) -> None:
        line = _request_line(scope)
        try:
            # The body is not known yet: the claim names the request line; the whole body's digest is
            # compared with a stored outcome's, and stored with the outcome.
            claimed = await store.claim(db, principal, key, _hash(line, b"streamed"), check_finished=False)
        except Exception as exc:
            return await _refused(scope, receive, send, exc)
        if isinstance(claimed, store.Outcome):
            digest = await _body_digest(receive)
            if digest is None:
                return  # the client went away
            if claimed.request_hash != _hash(line, digest.encode()):
                return await _problem(scope, receive, send, store.reused())
            return await _replay(send, claimed)

        hasher = hashlib.sha256()
        whole_body = False

        async def hashing_receive() -> Message:
            nonlocal whole_body
            message = await receive()
            if message["type"] == "http.request":
                hasher.update(message.get("body", b""))
                whole_body = whole_body or not message.get("more_body", False)
            return message

        captured = _Capture(limit=MAX_STREAMED_OUTCOME)

        async def passing(message: Message) -> None:
            captured.add(message)
            await send(message)

        stop = asyncio.Event()
        renewing = asyncio.create_task(_keep_claim(db, claimed, stop))
        try:
            await self.app(scope, hashing_receive, passing)
        except BaseException:
            with anyio.CancelScope(shield=True):
                stop.set()
                await renewing
                await _quietly(store.release(db, claimed), key)
            raise
        with anyio.CancelScope(shield=True):
            stop.set()
            await renewing
            if captured.status >= 500 or captured.overflowed or not whole_body:
                # Without the whole body there is no digest to compare a retry with; the retry runs
                # again, which a streamed endpoint allows.
                await _quietly(store.release(db, claimed), key)
            else:
                outcome = captured.outcome()
                await _quietly(
                    store.store(db, claimed, outcome, _hash(line, hasher.hexdigest().encode())), key
                )

    @staticmethod
    def _principal(scope: Scope) -> str | None:
        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return str(scope["app"].state.token_verifier.verify(token).id)
        except ProblemError:
            return None


async def _keep_claim(db: Database, held: store.Held, stop: asyncio.Event) -> None:
    """Renew a live streamed request's lease until `stop` is set."""
    interval = store.LEASE.total_seconds() / 3
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), interval)
            return
        except TimeoutError:
            pass
        try:
            if not await store.renew(db, held):
                log.warning("idempotency key %r was taken over while its request ran", held.key)
                return
        except Exception:
            log.exception("could not renew the claim on idempotency key %r", held.key)


async def _quietly(write: Awaitable[object], key: str) -> None:
    try:
        await write
    except Exception:
        log.exception("could not record the outcome of idempotency key %r", key)


async def _problem(scope: Scope, receive: Receive, send: Send, exc: ProblemError) -> None:
    response = problem_response(Request(scope), exc.status, exc.code, exc.detail, headers=exc.headers)
    await response(scope, receive, send)


async def _refused(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """The answer when the key could not be claimed: its problem (the key is in use, or reused), or
    503 OVERLOADED when the claim's own short transaction found no connection or no write turn in
    time (crm_common.errors.overloaded), as the request itself would have been answered."""
    problem = exc if isinstance(exc, ProblemError) else overloaded(exc)
    if problem is None:
        raise exc
    await _problem(scope, receive, send, problem)


async def _replay(send: Send, outcome: store.Outcome) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in outcome.headers]
    await send(
        {
            "type": "http.response.start",
            "status": outcome.status,
            "headers": [*headers, (b"idempotent-replayed", b"true")],
        }
    )
    await send({"type": "http.response.body", "body": outcome.body})


def _body_then(body: bytes, receive: Receive) -> Receive:
    """The body already read, then the real receive (which reports a disconnect)."""
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _body_digest(receive: Receive) -> str | None:
    """sha256 of the whole body, read through without keeping it; None if the client went away."""
    hasher = hashlib.sha256()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        hasher.update(message.get("body", b""))
        if not message.get("more_body", False):
            return hasher.hexdigest()
