"""Retry what the CRM turns away for now, after the wait it asks for: httpx transports for the
generated SDK (docs/api-guide.md, "Overload and retries"). Copy this file into your project.

    from retry_after import AsyncRetryAfterTransport
    crm = AuthenticatedClient(base_url=url, token=token,
                              httpx_args={"transport": AsyncRetryAfterTransport()})

A 429 `RATE_LIMITED` or 503 (`OVERLOADED`, `SERVICE_UNAVAILABLE`, ...) is sent again after its
`Retry-After` plus a little jitter, at most `attempts` times in all, and only when that is safe: a
GET/HEAD/OPTIONS, or a write that carries an `Idempotency-Key`. Anything else, or a wait longer than
`max_wait` seconds, comes back to the caller as the CRM answered it.
"""

import asyncio
import random
import time
from email.utils import parsedate_to_datetime

import httpx

RETRY_STATUSES = {429, 503}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def retry_after(response: httpx.Response) -> float:
    """The wait the response asks for, in seconds: `Retry-After` as seconds or as a date (1 if absent)."""
    value = response.headers.get("Retry-After", "1").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return 1.0


def wait_before_retry(
    request: httpx.Request, response: httpx.Response, attempt: int, attempts: int, max_wait: float
):
    """Seconds to wait before sending `request` again, or None to hand `response` to the caller."""
    if response.status_code not in RETRY_STATUSES or attempt >= attempts:
        return None
    if request.method not in SAFE_METHODS and "Idempotency-Key" not in request.headers:
        return None  # a write without a key is not repeated behind the caller's back
    wait = retry_after(response)
    if wait > max_wait:
        return None
    # Jitter: clients turned away together should not all come back in the same instant.
    return wait + random.uniform(0, 0.25)


class AsyncRetryAfterTransport(httpx.AsyncBaseTransport):
    """For the SDK's `asyncio` / `asyncio_detailed` functions."""

    def __init__(
        self, transport: httpx.AsyncBaseTransport | None = None, *, attempts: int = 3, max_wait: float = 30.0
    ):
        self.transport = transport or httpx.AsyncHTTPTransport()
        self.attempts, self.max_wait = attempts, max_wait

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 1
        while True:
            response = await self.transport.handle_async_request(request)
            wait = wait_before_retry(request, response, attempt, self.attempts, self.max_wait)
            if wait is None:
                return response
            await response.aclose()
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self.transport.aclose()


class RetryAfterTransport(httpx.BaseTransport):
    """For the SDK's `sync` / `sync_detailed` functions."""

    def __init__(
        self, transport: httpx.BaseTransport | None = None, *, attempts: int = 3, max_wait: float = 30.0
    ):
        self.transport = transport or httpx.HTTPTransport()
        self.attempts, self.max_wait = attempts, max_wait

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 1
        while True:
            response = self.transport.handle_request(request)
            wait = wait_before_retry(request, response, attempt, self.attempts, self.max_wait)
            if wait is None:
                return response
            response.close()
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self.transport.close()
