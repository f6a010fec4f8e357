"""Short-lived memory of API answers a page needs every time but that rarely change: who the user is
(`/me`, their time zone), the view definitions, the user directory for a filter's choices.

Only what the console *offers* depends on these; every write is still checked by the API with the
user's token, so a permission revoked a few seconds ago is never a permission granted. Entries are
kept per key (the token's digest for anything about one user) for a few seconds, and the oldest go
first past a size bound."""

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

USER_SECONDS = 10.0  # /me, the time zone, the directory: a change shows within this
VIEW_SECONDS = 60.0  # the view definitions, the same for every user
MAX_ENTRIES = 10_000


class Memo:
    def __init__(self, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[tuple[object, ...], tuple[float, Any]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(
        self, key: tuple[object, ...], seconds: float, fetch: Callable[[], Awaitable[tuple[bool, Any]]]
    ) -> Any:
        """The value kept for `key`, or `fetch()`'s; `fetch` answers (keep, value): a failure (a 403,
        a 503) is answered but not kept, so the next page asks again."""
        now = self._clock()
        kept = self._entries.get(key)
        if kept and kept[0] > now:
            return kept[1]
        keep, value = await fetch()
        if keep:
            self._entries[key] = (now + seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def forget(self, key: tuple[object, ...]) -> None:
        self._entries.pop(key, None)
