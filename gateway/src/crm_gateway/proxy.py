"""HTTP upstream for the distributed mode, on aiohttp.

Measured on this machine kind, an httpx hop kept ~0.2 of the backend's throughput and aiohttp ~0.8,
so the gateway forwards with aiohttp. Ordinary request bodies are read whole under a size cap;
bulk endpoints (import/export) stream both ways under a larger one. Responses stream back.

A service that restarts drops connections for a moment: a request that could not reach it is sent
once more after a short pause when that is safe (nothing reached the service, or the method is safe,
or the request carries an `Idempotency-Key`). A service that keeps failing trips its circuit: the
gateway answers 503 `SERVICE_UNAVAILABLE` with `Retry-After` at once instead of piling requests on it.

A service at capacity answers 503 `OVERLOADED` with `Retry-After`. It is alive, so that answer never
counts towards its circuit. A request that is safe to repeat is sent once more after the wait the
service asked for, but only when that wait fits in the gateway's overload retry budget (counted from
when the request arrived). Otherwise the refusal goes straight to the client with its `Retry-After`.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from crm_common import tracing
from crm_common.errors import problem_response
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from crm_gateway.circuit import Circuit

HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailers",
    b"transfer-encoding",
    b"upgrade",
    b"host",
    b"content-length",
}


class BodyTooLarge(Exception):
    pass


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
RETRY_PAUSE_SECONDS = 0.3


def _safe_to_repeat(method: str, headers: list[tuple[str, str]]) -> bool:
    return method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k, _ in headers)


def _retryable(method: str, headers: list[tuple[str, str]], exc: Exception) -> bool:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return True  # the connection was never made: the service saw nothing
    if not isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return False
    return _safe_to_repeat(method, headers)


def retry_after_seconds(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds or an HTTP date (RFC 9110); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _problem_code(body: bytes) -> str | None:
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    return problem.get("code") if isinstance(problem, dict) else None


# An admission refusal is a few hundred bytes; a 503 body larger than this (or of unknown length) is
# not one and is streamed on as it is.
MAX_OVERLOAD_BODY_BYTES = 16384


# Below uvicorn's keep-alive timeout (5 s), which `crm serve` runs the services with.
UPSTREAM_KEEPALIVE_SECONDS = 4.0

# Bulk endpoints: large bodies, long processing; everything else is held to the normal limits.
BULK_PATHS = ("/api/v1/customers/import", "/api/v1/customers/export")


async def stream_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, refusing to pass more than `limit` bytes on."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def read_body(receive: Receive, limit: int) -> bytes:
    return b"".join([chunk async for chunk in stream_body(receive, limit)])


class HttpUpstream:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        max_body_bytes: int,
        bulk_timeout: float = 600.0,
        max_bulk_body_bytes: int = 1024**3,
        circuit: Circuit | None = None,
        overload_retry_seconds: float = 0.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # A deadline on connecting and on every wait for the service, not on the whole exchange,
        # so a long streamed export is fine while a service that stops answering is not.
        self.timeout = aiohttp.ClientTimeout(total=None, connect=min(timeout, 3), sock_read=timeout)
        self.bulk_timeout = aiohttp.ClientTimeout(total=None, connect=min(timeout, 3), sock_read=bulk_timeout)
        self.max_body_bytes = max_body_bytes
        self.max_bulk_body_bytes = max_bulk_body_bytes
        self.circuit = circuit or Circuit()
        # How long a request may be held beyond its first attempt to retry after a 503 OVERLOADED.
        self.overload_retry_seconds = overload_retry_seconds
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Idle connections are dropped before the services' uvicorn drops them (5 s): reusing one it is
        # closing fails the request with a disconnect, which a POST cannot be retried after (502).
        connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=UPSTREAM_KEEPALIVE_SECONDS)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def get_json(self, path: str) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(self.base_url + path, timeout=self.timeout) as resp:
            resp.raise_for_status()
            body: dict[str, Any] = await resp.json()
            return body

    def _overload_wait(self, retry_after: str | None, body: bytes, arrived: float) -> float | None:
        """The pause before sending a refused request again, or None when the refusal is for the client:
        not an admission refusal, no usable `Retry-After`, or a wait past the retry budget."""
        if _problem_code(body) != "OVERLOADED":
            return None
        wait = retry_after_seconds(retry_after)
        if wait is None or time.monotonic() - arrived + wait > self.overload_retry_seconds:
            return None
        return wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self._session is not None
        request = Request(scope)
        bulk = scope["path"] in BULK_PATHS
        limit = self.max_bulk_body_bytes if bulk else self.max_body_bytes
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in HOP_BY_HOP
        ]
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", client[0]))
        # The service's span is a child of the gateway's, not of whatever the client sent.
        headers = [(k, v) for k, v in headers if k.lower() not in ("traceparent", "tracestate")]
        headers.extend(tracing.outgoing_headers().items())
        url = (
            self.base_url
            + scope["path"]
            + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        )
        declared = next((int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit()), None)
        if declared is not None and declared > limit:
            await _failure(request, BodyTooLarge(), limit)(scope, receive, send)
            return
        if not self.circuit.allow():
            await _circuit_open(request, self.circuit)(scope, receive, send)
            return
        started = False
        arrived = time.monotonic()
        repeatable = not bulk and _safe_to_repeat(scope["method"], headers)
        try:
            # Small bodies go as one piece (and can be sent again); bulk ones are streamed on as they
            # arrive, so they are never retried.
            data = stream_body(receive, limit) if bulk else (await read_body(receive, limit)) or None
            for attempt in (1, 2):
                try:
                    async with self._session.request(
                        scope["method"],
                        url,
                        headers=headers,
                        data=data,
                        allow_redirects=False,
                        timeout=self.bulk_timeout if bulk else self.timeout,
                    ) as resp:
                        # Any answer means the service is alive, a 503 OVERLOADED too: never a failure.
                        self.circuit.succeeded()
                        out_headers = [
                            (k, v)
                            for k, v in resp.raw_headers
                            if k.lower() not in HOP_BY_HOP or k.lower() == b"content-length"
                        ]
                        head = b""
                        small = (
                            resp.content_length or MAX_OVERLOAD_BODY_BYTES + 1
                        ) <= MAX_OVERLOAD_BODY_BYTES
                        if resp.status == 503 and repeatable and attempt == 1 and small:
                            head = await resp.read()
                            wait = self._overload_wait(resp.headers.get("Retry-After"), head, arrived)
                            if wait is not None:
                                await asyncio.sleep(wait)
                                continue
                        started = True
                        await send(
                            {"type": "http.response.start", "status": resp.status, "headers": out_headers}
                        )
                        if head:
                            await send({"type": "http.response.body", "body": head, "more_body": True})
                        async for chunk in resp.content.iter_chunked(65536):
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        await send({"type": "http.response.body", "body": b""})
                        return
                except aiohttp.ClientError as exc:
                    if started or bulk or attempt == 2 or not _retryable(scope["method"], headers, exc):
                        raise
                    await asyncio.sleep(RETRY_PAUSE_SECONDS)
        except (BodyTooLarge, TimeoutError, aiohttp.ClientError) as exc:
            if isinstance(exc, aiohttp.ClientConnectionError):
                self.circuit.failed()
            if started:  # mid-body there is nothing sensible left to send: the client sees a cut
                raise
            await _failure(request, exc, limit)(scope, receive, send)


def _circuit_open(request: Request, circuit: Circuit) -> JSONResponse:
    return problem_response(
        request,
        503,
        "SERVICE_UNAVAILABLE",
        "The service is failing; the gateway is not sending it requests for a moment. Retry after the time given.",
        headers={"Retry-After": str(circuit.retry_after())},
    )


def _failure(request: Request, exc: Exception, limit: int) -> JSONResponse:
    if isinstance(exc, BodyTooLarge):
        return problem_response(
            request, 413, "PAYLOAD_TOO_LARGE", f"Request bodies to this path are limited to {limit} bytes."
        )
    if isinstance(exc, TimeoutError):
        return problem_response(request, 504, "UPSTREAM_TIMEOUT", "The service did not answer in time.")
    return problem_response(request, 502, "UPSTREAM_UNAVAILABLE", "The service is not reachable.")
