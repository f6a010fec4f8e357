"""The gateway's front door, one pure-ASGI middleware in front of every route (its own and the
services'): request body size limit, API keys swapped for short-lived access tokens, and a rate
limit per credential. `/healthz`, `/readyz` and `/metrics` pass untouched.

Rate limits are counted by crm_gateway.ratelimit: in Redis when `CRM_REDIS_URL` is set (one limit
across every gateway replica), else in this process's memory.
"""

import math
import time
import uuid
from collections import OrderedDict
from typing import Any

import jwt
from crm_common.errors import ProblemError, problem_response
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway.clientaddr import client_address
from crm_gateway.identity import apikeys, clients
from crm_gateway.proxy import BULK_PATHS
from crm_gateway.ratelimit import MemoryRateLimiter, RedisRateLimiter
from crm_gateway.routing import service_for

EXEMPT = ("/healthz", "/readyz", "/metrics")
RATE_LIMITED = Counter(
    "crm_rate_limited_total",
    "Requests refused by the rate limit, by credential kind (sub, key, ip)",
    ["kind"],
)


class BodyTooLarge(Exception):
    pass


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        *,
        gateway: Any,  # the gateway FastAPI app: state.runtime, state.token_issuer, state.token_verifier
        dispatcher: ASGIApp | None = None,
        max_body_bytes: int,
        max_bulk_body_bytes: int,
        rate_limit: int,
        rate_window_seconds: float,
        limiter: MemoryRateLimiter | RedisRateLimiter | None = None,
        key_cache_seconds: float = 5.0,
    ) -> None:
        self.app = app
        self.gateway = gateway
        gateway.state.front_door = self
        # Service paths go straight to the dispatcher, skipping the gateway's own route table.
        self.dispatcher = dispatcher
        self.max_body_bytes = max_body_bytes
        self.max_bulk_body_bytes = max_bulk_body_bytes
        self.limiter = limiter
        self.policy = f"{rate_limit};w={int(rate_window_seconds)}".encode()
        self.key_cache_seconds = key_cache_seconds
        self.trusted_proxies = getattr(gateway.state, "trusted_proxies", ())
        # secret hash -> (cached until, minted token or None, key id); verified JWT -> (subject, exp,
        # OAuth client id or None)
        self._keys: _Lru = _Lru(10_000)
        self._tokens: _Lru = _Lru(50_000)
        # OAuth client id -> (checked until, live)
        self._clients: _Lru = _Lru(10_000)

    def forget_key(self, key_id: uuid.UUID) -> None:
        """Called on revocation so this process refuses the key at once."""
        for h in [h for h, entry in self._keys.items() if entry[2] == key_id]:
            del self._keys[h]

    def forget_keys(self) -> None:
        """Called when a role changes: the next use of any key is exchanged with the new definition."""
        self._keys.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT:
            return await self.app(scope, receive, send)
        request = Request(scope)
        limit = self.max_bulk_body_bytes if scope["path"] in BULK_PATHS else self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _too_large(request, limit)(scope, receive, send)
            return

        try:
            scope, credential = await self._credential(scope, request)
        except ProblemError as exc:
            return await problem_response(request, exc.status, exc.code, exc.detail, headers=exc.headers)(
                scope, receive, send
            )

        extra_headers: list[tuple[bytes, bytes]] = []
        if self.limiter is not None:
            allowed, remaining, reset = await self.limiter.hit(credential)
            reset_s = str(math.ceil(reset)).encode()
            extra_headers = [
                (b"ratelimit-limit", str(self.limiter.limit).encode()),
                (b"ratelimit-remaining", str(remaining).encode()),
                (b"ratelimit-reset", reset_s),
                (b"ratelimit-policy", self.policy),
            ]
            if not allowed:
                RATE_LIMITED.labels(credential.partition(":")[0]).inc()
                response = problem_response(
                    request,
                    429,
                    "RATE_LIMITED",
                    f"Too many requests for this credential; retry in {reset_s.decode()} s.",
                    headers={"Retry-After": reset_s.decode()},
                )
                response.raw_headers.extend(extra_headers)
                return await response(scope, receive, send)

        received = 0
        overflow = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflow = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if overflow:  # whatever the app answers to a body it could not finish reading: 413
                return
            if message["type"] == "http.response.start":
                started = True
                if extra_headers:
                    message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            await send(message)

        target = self.dispatcher if self.dispatcher is not None and service_for(scope["path"]) else self.app
        try:
            await target(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            pass
        if overflow and not started:
            await _too_large(request, limit)(scope, receive, send)

    async def _credential(self, scope: Scope, request: Request) -> tuple[Scope, str]:
        """The rate-limit key, and the scope with an API key swapped for an access token."""
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            return scope, f"ip:{client_address(scope, self.trusted_proxies)}"
        if apikeys.looks_like_key(value):
            token, key_id = await self._swap(value)
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            headers.append((b"authorization", b"Bearer " + token.encode()))
            return {**scope, "headers": headers}, f"key:{key_id}"
        cached = self._tokens.get(value)
        now = time.time()
        if cached is None or cached[1] <= now:
            try:
                principal = self.gateway.state.token_verifier.verify(value)
            except ProblemError:
                # Not ours to refuse here: the route (or the service) answers 401. Count it by address.
                return scope, f"ip:{client_address(scope, self.trusted_proxies)}"
            claims = jwt.decode(value, options={"verify_signature": False})
            cached = (principal.id, claims.get("exp", now), claims.get("cid"))
            self._tokens.put(value, cached)
        subject, _, client_id = cached
        if client_id:
            # An OAuth client's token stops with its client, as an API key does (services know
            # nothing of clients, so the door checks).
            await self._check_client(client_id)
            return scope, f"client:{client_id}"
        return scope, f"sub:{subject}"

    async def _check_client(self, client_id: str) -> None:
        now = time.monotonic()
        cached = self._clients.get(client_id)
        if cached is None or cached[0] <= now:
            async with self.gateway.state.runtime.db.transaction(read_only=True) as session:
                live = await clients.is_live(session, client_id)
            cached = (now + self.key_cache_seconds, live)
            self._clients.put(client_id, cached)
        if not cached[1]:
            raise ProblemError(
                401,
                "UNAUTHORIZED",
                "The OAuth client of this token was revoked or has expired.",
                headers={"WWW-Authenticate": 'Bearer realm="crm"'},
            )

    def forget_client(self, client_id: str) -> None:
        """Called on revocation so this process refuses the client's tokens at once."""
        self._clients.pop(client_id, None)

    async def _swap(self, secret: str) -> tuple[str, uuid.UUID]:
        digest = apikeys.hash_key(secret)
        now = time.monotonic()
        cached = self._keys.get(digest)
        if cached is not None and cached[0] > now:
            if cached[1] is None:
                raise _bad_key()
            return cached[1], cached[2]
        async with self.gateway.state.runtime.db.transaction(read_only=True) as session:
            identity = await apikeys.resolve(session, secret)
        if identity is None:
            self._keys.put(digest, (now + self.key_cache_seconds, None, None))
            raise _bad_key()
        issuer = self.gateway.state.token_issuer
        ttl = max(int(self.key_cache_seconds) * 4, 60)
        token = issuer.issue_claims(
            {
                "sub": str(identity.user_id),
                "email": identity.email,
                "name": f"API key {identity.name}",
                "roles": [],
                "perms": identity.permissions,
                "scp": identity.scopes,
                "akid": str(identity.key_id),
                # The creator's: their deactivation or password change revokes this token too.
                "tv": identity.token_version,
            },
            ttl_seconds=ttl,
            not_after=identity.expires_at,
        )
        self._keys.put(digest, (now + self.key_cache_seconds, token, identity.key_id))
        return token, identity.key_id


def _bad_key() -> ProblemError:
    return ProblemError(
        401,
        "UNAUTHORIZED",
        "The API key is not valid (unknown, revoked or expired).",
        headers={"WWW-Authenticate": 'Bearer realm="crm"'},
    )


def _too_large(request: Request, limit: int) -> JSONResponse:
    return problem_response(
        request, 413, "PAYLOAD_TOO_LARGE", f"Request bodies to this path are limited to {limit} bytes."
    )
