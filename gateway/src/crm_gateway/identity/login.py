"""What keeps `POST /auth/token` from being used against the service (docs/api-guide.md#signing-in).

- `PasswordWork` bounds the argon2 work: at most `concurrency` hashes run at once (in threads, off
  the event loop) and at most `queue` wait; past that a login is a 503 `OVERLOADED` at once. So a
  burst of logins costs at most `concurrency` CPU cores and every other request keeps its share.
- `LoginThrottle` counts failed attempts per account and per client address. An account with `account_failures` failures in a row is locked for `lock_seconds`, doubled
  for each further failure up to `lock_max_seconds`; a success clears it, and an hour without
  failures forgets it. An address with `address_failures` failures within `address_window_seconds`
  may not try again until the oldest of them leaves the window. Attempts still being checked count
  as failures, so 50 concurrent guesses at one account are not 50 hashes. A refused attempt is a 429
  `LOGIN_THROTTLED` with `Retry-After` and costs no hash.
- Where they are counted follows the rate limiter (crm_gateway.ratelimit): with `CRM_REDIS_URL` set,
  in Redis (`RedisLoginThrottle`, the same rules in two atomic scripts), so every gateway replica sees
  every failure; without it, in this process's memory (`LoginThrottle`: the embedded default is one
  process). Should Redis stop answering, a gateway counts in its own memory for a few seconds at a
  time (and logs it) rather than refusing every sign-in.
"""

import asyncio
import logging
import math
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crm_common.errors import ProblemError
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from crm_gateway.settings import GatewaySettings, workers_share

log = logging.getLogger("crm.gateway.login")
T = TypeVar("T")
FORGET_AFTER_SECONDS = 3600.0
MAX_TRACKED = 100_000


class PasswordWork:
    def __init__(self, *, concurrency: int, queue: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.queue = queue
        self._waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._waiting >= self.queue:
            raise ProblemError(
                503,
                "OVERLOADED",
                "Too many sign-ins are being checked right now; retry shortly.",
                headers={"Retry-After": "1"},
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._slots.release()


@dataclass
class _Account:
    failures: int = 0
    last_failure: float = 0.0
    in_flight: int = 0


@dataclass
class _Address:
    failures: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class _Lru(OrderedDict[str, T]):
    def get_or_new(self, key: str, factory: Callable[[], T]) -> T:
        value = self.get(key)
        if value is None:
            value = self[key] = factory()
            while len(self) > MAX_TRACKED:
                self.popitem(last=False)
        self.move_to_end(key)
        return value


def throttled(wait: float) -> ProblemError:
    retry = str(max(1, math.ceil(wait)))
    return ProblemError(
        429,
        "LOGIN_THROTTLED",
        f"Too many failed sign-ins for this account or from this address; retry in {retry} s.",
        headers={"Retry-After": retry},
    )


@dataclass(frozen=True)
class Attempt:
    """A sign-in being checked: `finish` it with the outcome, in the store that admitted it."""

    account: str
    address: str
    id: str = ""
    local: bool = True


class LoginThrottle:
    def __init__(
        self,
        *,
        account_failures: int = 5,
        lock_seconds: float = 15.0,
        lock_max_seconds: float = 900.0,
        address_failures: int = 20,
        address_window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account_failures = account_failures
        self.lock_seconds = lock_seconds
        self.lock_max_seconds = lock_max_seconds
        self.address_failures = address_failures
        self.address_window_seconds = address_window_seconds
        self.clock = clock
        self._accounts: _Lru[_Account] = _Lru()
        self._addresses: _Lru[_Address] = _Lru()

    def _account_wait(self, a: _Account, now: float) -> float:
        if a.failures and now - a.last_failure > FORGET_AFTER_SECONDS:
            a.failures = 0
        if a.failures >= self.account_failures:
            lock = min(self.lock_max_seconds, self.lock_seconds * 2 ** (a.failures - self.account_failures))
            remaining = a.last_failure + lock - now
            if remaining > 0:
                return float(remaining)
            return 1.0 if a.in_flight else 0.0  # once unlocked, one guess at a time
        return 1.0 if a.failures + a.in_flight >= self.account_failures else 0.0

    def _address_wait(self, d: _Address, now: float) -> float:
        while d.failures and d.failures[0] <= now - self.address_window_seconds:
            d.failures.popleft()
        if len(d.failures) + d.in_flight < self.address_failures:
            return 0.0
        if not d.failures:
            return 1.0
        return max(1.0, d.failures[0] + self.address_window_seconds - now)

    async def start(self, account: str, address: str) -> "Attempt":
        self.begin(account, address)
        return Attempt(account, address)

    async def finish(self, attempt: "Attempt", *, ok: bool) -> None:
        self.end(attempt.account, attempt.address, ok=ok)

    async def close(self) -> None:
        pass

    def begin(self, account: str, address: str) -> None:
        """Before checking a password: 429 when the account or the address must wait."""
        now = self.clock()
        a = self._accounts.get_or_new(account.lower(), _Account)
        d = self._addresses.get_or_new(address, _Address)
        wait = max(self._account_wait(a, now), self._address_wait(d, now))
        if wait > 0:
            raise throttled(wait)
        a.in_flight += 1
        d.in_flight += 1

    def end(self, account: str, address: str, *, ok: bool) -> None:
        now = self.clock()
        a = self._accounts.get_or_new(account.lower(), _Account)
        d = self._addresses.get_or_new(address, _Address)
        a.in_flight = max(0, a.in_flight - 1)
        d.in_flight = max(0, d.in_flight - 1)
        if ok:
            a.failures = 0
            return
        a.failures += 1
        a.last_failure = now
        d.failures.append(now)
        while len(d.failures) > self.address_failures:
            d.failures.popleft()


# The same rules as LoginThrottle, atomically in Redis. Times are the gateways' wall clocks (seconds);
# attempts in flight are members of a sorted set scored by their start, so one whose gateway died
# mid-check stops counting after IN_FLIGHT_STALE_SECONDS. Numbers go back as strings: Redis would
# truncate a Lua float to an integer.
# KEYS: account hash (failures, last), account in-flight zset, address failures zset, address in-flight
# zset. ARGV: now, attempt id, account failures, lock s, lock max s, address failures, window s,
# forget-after s, in-flight stale s.
_BEGIN = """
local now = tonumber(ARGV[1])
local acct_max, lock, lock_max = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local addr_max, window = tonumber(ARGV[6]), tonumber(ARGV[7])
local forget, stale = tonumber(ARGV[8]), tonumber(ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - stale)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - stale)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if failures > 0 and now - last > forget then
  failures = 0
  redis.call('DEL', KEYS[1])
end
local in_flight = redis.call('ZCARD', KEYS[2])
local wait = 0
if failures >= acct_max then
  local remaining = last + math.min(lock_max, lock * 2 ^ (failures - acct_max)) - now
  if remaining > 0 then wait = remaining elseif in_flight > 0 then wait = 1 end
elseif failures + in_flight >= acct_max then
  wait = 1
end
local addr_failures = redis.call('ZCARD', KEYS[3])
if addr_failures + redis.call('ZCARD', KEYS[4]) >= addr_max then
  local addr_wait = 1
  if addr_failures > 0 then
    local oldest = tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2])
    addr_wait = math.max(1, oldest + window - now)
  end
  wait = math.max(wait, addr_wait)
end
if wait > 0 then return tostring(wait) end
redis.call('ZADD', KEYS[2], now, ARGV[2])
redis.call('EXPIRE', KEYS[2], math.ceil(stale))
redis.call('ZADD', KEYS[4], now, ARGV[2])
redis.call('EXPIRE', KEYS[4], math.ceil(stale))
return '0'
"""

# KEYS as above. ARGV: now, attempt id, ok (1/0), address failures, window s, forget-after s.
_END = """
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
  return 0
end
redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last', ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[6])))
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[4]) + 1))
redis.call('EXPIRE', KEYS[3], math.ceil(tonumber(ARGV[5])))
return 0
"""

IN_FLIGHT_STALE_SECONDS = 60.0


class RedisLoginThrottle:
    """LoginThrottle's rules counted in Redis, shared by every gateway using the same Redis and
    `prefix`."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "crm:login:",
        retry_after_failure: float = 5.0,
        clock: Callable[[], float] = time.time,
        **rules: Any,
    ) -> None:
        self.prefix = prefix
        self.retry_after_failure = retry_after_failure
        self.clock = clock
        self.fallback = LoginThrottle(**rules)
        f = self.fallback
        self._rules = [
            f.account_failures,
            f.lock_seconds,
            f.lock_max_seconds,
            f.address_failures,
            f.address_window_seconds,
            FORGET_AFTER_SECONDS,
        ]
        self._redis = aioredis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25)
        self._begin = self._redis.register_script(_BEGIN)
        self._end = self._redis.register_script(_END)
        self._down_until = 0.0

    def _keys(self, account: str, address: str) -> list[str]:
        a, d = account.lower(), address
        p = self.prefix
        return [f"{p}account:{a}", f"{p}account-checking:{a}", f"{p}address:{d}", f"{p}address-checking:{d}"]

    def _unreachable(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + self.retry_after_failure
        log.warning(
            "sign-in throttle store unreachable (%s); counting in this process for %.0f s",
            exc,
            self.retry_after_failure,
        )

    async def start(self, account: str, address: str) -> Attempt:
        if time.monotonic() >= self._down_until:
            attempt_id = uuid.uuid4().hex
            r = self._rules
            try:
                wait = await self._begin(
                    keys=self._keys(account, address),
                    args=[
                        self.clock(),
                        attempt_id,
                        r[0],
                        r[1],
                        r[2],
                        r[3],
                        r[4],
                        r[5],
                        IN_FLIGHT_STALE_SECONDS,
                    ],
                )
            except (RedisError, OSError) as exc:
                self._unreachable(exc)
            else:
                if float(wait) > 0:
                    raise throttled(float(wait))
                return Attempt(account, address, attempt_id, local=False)
        return await self.fallback.start(account, address)

    async def finish(self, attempt: Attempt, *, ok: bool) -> None:
        if attempt.local:
            return await self.fallback.finish(attempt, ok=ok)
        r = self._rules
        try:
            await self._end(
                keys=self._keys(attempt.account, attempt.address),
                args=[self.clock(), attempt.id, "1" if ok else "0", r[3], r[4], r[5]],
            )
        except (RedisError, OSError) as exc:
            self._unreachable(exc)

    async def close(self) -> None:
        await self._redis.aclose()


def make_login_throttle(settings: GatewaySettings) -> LoginThrottle | RedisLoginThrottle:
    rules: dict[str, Any] = dict(
        account_failures=settings.login_account_failures,
        lock_seconds=settings.login_lock_seconds,
        lock_max_seconds=settings.login_lock_max_seconds,
        address_failures=settings.login_address_failures,
        address_window_seconds=settings.login_address_window_seconds,
    )
    if settings.redis_url:
        return RedisLoginThrottle(
            settings.redis_url, prefix=f"{settings.events_namespace}crm:login:", **rules
        )
    # `crm up --workers N` without Redis: each worker counts its share (GatewaySettings.workers).
    for count in ("account_failures", "address_failures"):
        rules[count] = workers_share(rules[count], settings.workers)
    return LoginThrottle(**rules)
