"""One HTTP POST to a receiver, safely: the connection goes only to addresses the guard checked at
that moment (no second DNS lookup for an attacker to answer differently), the whole exchange has a
deadline, redirects are not followed, and at most the first kilobyte of the answer is read."""

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import httpcore

from webhook_svc.service.targets import Guard, TargetForbidden, split_target

EXCERPT_BYTES = 1024
USER_AGENT = "crm-webhooks/1.0"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None = None
    error: str | None = None
    # The guard refused the target: no connection was made.
    refused: bool = False

    @property
    def success(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the SSRF check at the only place a connection is made."""

    def __init__(self, guard: Guard):
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore.AsyncNetworkStream:
        error: Exception | None = None
        for address in await self.guard.addresses(host, port):
            try:
                # TLS (if any) is started afterwards with the host name, so SNI and the
                # certificate check are for the name, while the socket goes to the checked address.
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise TargetForbidden("unix sockets are not webhook targets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class Sender:
    def __init__(self, guard: Guard, *, timeout: float, max_connections: int = 32):
        self.guard = guard
        self.timeout = timeout
        self.pool = httpcore.AsyncConnectionPool(
            network_backend=_GuardedBackend(guard),
            max_connections=max_connections,
            keepalive_expiry=30.0,
            retries=0,
        )

    async def close(self) -> None:
        await self.pool.aclose()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        started = time.perf_counter()

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            split_target(url)
            request_headers = {
                **headers,
                "content-type": "application/cloudevents+json",
                "user-agent": USER_AGENT,
            }
            t = self.timeout
            async with asyncio.timeout(t):
                async with self.pool.stream(
                    "POST",
                    url,
                    headers=request_headers,
                    content=body,
                    extensions={"timeout": {"connect": t, "read": t, "write": t, "pool": t}},
                ) as response:
                    excerpt = await _first_bytes(response, EXCERPT_BYTES)
                    status = response.status
                    location = _header(response.headers, b"location")
        except TargetForbidden as exc:
            return Outcome(None, elapsed(), error=f"refused: {exc}", refused=True)
        except (TimeoutError, httpcore.TimeoutException):
            return Outcome(None, elapsed(), error=f"timed out after {self.timeout:g} s")
        except httpcore.ConnectError as exc:
            return Outcome(None, elapsed(), error=f"could not connect: {exc or type(exc).__name__}")
        except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError) as exc:
            return Outcome(None, elapsed(), error=f"{type(exc).__name__}: {exc}"[:1000])
        except ValueError as exc:
            return Outcome(None, elapsed(), error=f"not a webhook target: {exc}")
        error = None
        if 300 <= status < 400:
            error = f"answered {status}: redirects are not followed" + (
                f" (Location: {location[:300]})" if location else ""
            )
        return Outcome(status, elapsed(), excerpt, error)


async def _first_bytes(response: httpcore.Response, limit: int) -> str:
    """At most `limit` bytes of the body; the rest is never read (the connection is dropped)."""
    data = b""
    async for chunk in response.aiter_stream():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", errors="replace")


def _header(headers, name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
