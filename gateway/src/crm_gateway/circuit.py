"""A circuit breaker per upstream service: after a run of connection failures the gateway stops
sending requests to a service that is down and answers at once, then lets one request through now
and then to find out whether the service is back."""

import time


class Circuit:
    def __init__(self, *, failure_threshold: int = 5, reset_after: float = 5.0) -> None:
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def retry_after(self) -> int:
        """Whole seconds until the next probe is let through (at least 1)."""
        if self._opened_at is None:
            return 0
        return max(1, round(self._opened_at + self.reset_after - time.monotonic()))

    def allow(self) -> bool:
        """Whether a request may go to the service now: always while closed; once the reset time has
        passed, a single probe at a time while open."""
        if self._opened_at is None:
            return True
        if self._probing or time.monotonic() < self._opened_at + self.reset_after:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at, self._probing = time.monotonic(), False
