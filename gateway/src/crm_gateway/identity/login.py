"""What keeps `POST /auth/token` from being used against the service (docs/api-guide.md#signing-in).

- `PasswordWork` bounds the argon2 work: at most `concurrency` hashes run at once (in threads, off
  the event loop) and at most `queue` wait; past that a login is a 503 `OVERLOADED` at once. So a
  burst of logins costs at most `concurrency` CPU cores and every other request keeps its share.
- `LoginThrottle` counts failed attempts per account and per client address, in this gateway
  process. An account with `account_failures` failures in a row is locked for `lock_seconds`, doubled
  for each further failure up to `lock_max_seconds`; a success clears it, and an hour without
  failures forgets it. An address with `address_failures` failures within `address_window_seconds`
  may not try again until the oldest of them leaves the window. Attempts still being checked count
  as failures, so 50 concurrent guesses at one account are not 50 hashes. A refused attempt is a 429
  `LOGIN_THROTTLED` with `Retry-After` and costs no hash.
"""

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from crm_common.errors import ProblemError

T = TypeVar("T")
FORGET_AFTER_SECONDS = 3600.0
MAX_TRACKED = 100_000


class PasswordWork:
    def __init__(self, *, concurrency: int, queue: int):
        self._slots = asyncio.Semaphore(concurrency)
        self.queue = queue
        self._waiting = 0

    async def run(self, fn: Callable[..., T], *args) -> T:
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
    failures: deque = field(default_factory=deque)
    in_flight: int = 0


class _Lru(OrderedDict):
    def get_or_new(self, key, factory):
        value = self.get(key)
        if value is None:
            value = self[key] = factory()
            while len(self) > MAX_TRACKED:
                self.popitem(last=False)
        self.move_to_end(key)
        return value


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
    ):
        self.account_failures = account_failures
        self.lock_seconds = lock_seconds
        self.lock_max_seconds = lock_max_seconds
        self.address_failures = address_failures
        self.address_window_seconds = address_window_seconds
        self.clock = clock
        self._accounts = _Lru()
        self._addresses = _Lru()

    def _account_wait(self, a: _Account, now: float) -> float:
        if a.failures and now - a.last_failure > FORGET_AFTER_SECONDS:
            a.failures = 0
        if a.failures >= self.account_failures:
            lock = min(self.lock_max_seconds, self.lock_seconds * 2 ** (a.failures - self.account_failures))
            remaining = a.last_failure + lock - now
            if remaining > 0:
                return remaining
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

    def begin(self, account: str, address: str) -> None:
        """Before checking a password: 429 when the account or the address must wait."""
        now = self.clock()
        a = self._accounts.get_or_new(account.lower(), _Account)
        d = self._addresses.get_or_new(address, _Address)
        wait = max(self._account_wait(a, now), self._address_wait(d, now))
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            raise ProblemError(
                429,
                "LOGIN_THROTTLED",
                f"Too many failed sign-ins for this account or from this address; retry in {retry} s.",
                headers={"Retry-After": retry},
            )
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
