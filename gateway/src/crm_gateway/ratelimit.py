"""Rate limits per credential: a fixed window of `limit` requests per `window` seconds.

In memory by default, which counts per gateway process (N replicas allow N times the limit; the N
workers of `crm up --workers N` each allow 1/N of it). With
`CRM_REDIS_URL` set, every gateway counts in Redis, so the limit holds across replicas. Should Redis
stop answering, a gateway falls back to its own memory for a few seconds at a time (and logs it)
rather than refusing or failing requests: a rate limiter must never be what takes the API down.
"""

import logging
import time
from dataclasses import dataclass

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from crm_gateway.settings import GatewaySettings, workers_share

log = logging.getLogger("crm.gateway.ratelimit")

# INCR the window's counter, starting its expiry on the first hit; answer the count and the time left.
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


@dataclass
class Window:
    start: float
    count: int


class MemoryRateLimiter:
    """Counts in this process."""

    def __init__(self, limit: int, window: float, *, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._windows: dict[str, Window] = {}

    async def hit(self, key: str) -> tuple[bool, int, float]:
        return self.hit_now(key)

    def hit_now(self, key: str, now: float | None = None) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets)."""
        now = time.monotonic() if now is None else now
        w = self._windows.get(key)
        if w is None or now - w.start >= self.window:
            if len(self._windows) >= self.max_keys:
                self._sweep(now)
            w = self._windows[key] = Window(now, 0)
        reset = max(0.0, self.window - (now - w.start))
        if w.count >= self.limit:
            return False, 0, reset
        w.count += 1
        return True, self.limit - w.count, reset

    def _sweep(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if now - w.start >= self.window]:
            del self._windows[key]
        while len(self._windows) >= self.max_keys:  # still full of live windows: drop the oldest
            del self._windows[next(iter(self._windows))]

    async def close(self) -> None:
        pass


class RedisRateLimiter:
    """Counts in Redis, shared by every gateway using the same Redis and `prefix`."""

    def __init__(
        self,
        url: str,
        limit: int,
        window: float,
        *,
        prefix: str = "crm:ratelimit:",
        retry_after_failure: float = 5.0,
    ) -> None:
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self.retry_after_failure = retry_after_failure
        self._redis = aioredis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
        self._script = self._redis.register_script(_HIT)
        self._fallback = MemoryRateLimiter(limit, window)
        self._down_until = 0.0

    async def hit(self, key: str) -> tuple[bool, int, float]:
        now = time.monotonic()
        if now < self._down_until:
            return self._fallback.hit_now(key, now)
        try:
            count, ttl_ms = await self._script(keys=[self.prefix + key], args=[int(self.window * 1000)])
        except (RedisError, OSError) as exc:
            self._down_until = now + self.retry_after_failure
            log.warning(
                "rate limit store unreachable (%s); counting in this process for %.0f s",
                exc,
                self.retry_after_failure,
            )
            return self._fallback.hit_now(key, now)
        count, reset = int(count), max(0.0, int(ttl_ms) / 1000)
        if count > self.limit:
            return False, 0, reset
        return True, self.limit - count, reset

    async def close(self) -> None:
        await self._redis.aclose()


def make_rate_limiter(settings: GatewaySettings) -> MemoryRateLimiter | RedisRateLimiter | None:
    if not settings.rate_limit_enabled:
        return None
    if settings.redis_url:
        return RedisRateLimiter(
            settings.redis_url,
            settings.rate_limit_requests,
            settings.rate_limit_window_seconds,
            prefix=f"{settings.events_namespace}crm:ratelimit:",
        )
    return MemoryRateLimiter(
        workers_share(settings.rate_limit_requests, settings.workers), settings.rate_limit_window_seconds
    )
