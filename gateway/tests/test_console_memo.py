"""The console's short memory of answers every page needs (console/memo.py)."""

from crm_gateway.console.memo import Memo


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_an_answer_is_kept_for_its_seconds_and_a_failure_not_at_all():
    clock, calls = Clock(), []

    async def fetch(ok=True):
        calls.append(ok)
        return ok, len(calls)

    memo = Memo(clock=clock)
    assert await memo.get(("me", "a"), 10, fetch) == 1
    clock.now += 9
    assert await memo.get(("me", "a"), 10, fetch) == 1  # kept
    clock.now += 2
    assert await memo.get(("me", "a"), 10, fetch) == 2  # expired: asked again
    assert await memo.get(("me", "b"), 10, lambda: fetch(False)) == 3
    assert await memo.get(("me", "b"), 10, fetch) == 4  # the failure was not kept


async def test_the_oldest_go_first_past_the_bound():
    memo = Memo(max_entries=2, clock=Clock())

    async def value(v):
        return True, v

    for key in ("a", "b", "c"):
        await memo.get((key,), 10, lambda key=key: value(key))
    assert await memo.get(("a",), 10, lambda: value("again")) == "again"
    assert await memo.get(("c",), 10, lambda: value("not asked")) == "c"
