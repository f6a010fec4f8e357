"""docs/examples/retry_after.py, the transports docs/api-guide.md tells SDK users to copy: what they
retry, and that they wait as long as the CRM asks. (gateway/tests/test_sdk.py plugs one into the
generated SDK.)"""

import importlib.util
import time
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

SCRIPT = Path(__file__).parents[2] / "docs" / "examples" / "retry_after.py"
spec = importlib.util.spec_from_file_location("retry_after_example", SCRIPT)
example = importlib.util.module_from_spec(spec)
spec.loader.exec_module(example)

OVERLOADED = {"type": "about:blank", "title": "Service Unavailable", "status": 503, "code": "OVERLOADED"}


def crm(refusals: int, status: int = 503, retry_after: str = "0"):
    """A CRM that turns the first `refusals` requests away, then serves; and the requests it saw."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) <= refusals:
            return httpx.Response(status, json=OVERLOADED, headers={"Retry-After": retry_after})
        return httpx.Response(200, json={"served": True, "body": request.content.decode()})

    return httpx.MockTransport(handle), seen


async def test_a_refused_get_is_sent_again_no_sooner_than_retry_after():
    inner, seen = crm(refusals=1, retry_after="1")
    async with httpx.AsyncClient(
        transport=example.AsyncRetryAfterTransport(inner), base_url="http://crm"
    ) as c:
        started = time.monotonic()
        r = await c.get("/api/v1/customers")
        waited = time.monotonic() - started
    assert r.status_code == 200 and len(seen) == 2
    assert waited >= 1.0


@pytest.mark.parametrize(
    ("headers", "status", "attempts"), [({"Idempotency-Key": "k-1"}, 200, 2), ({}, 503, 1)]
)
async def test_a_write_is_retried_only_with_an_idempotency_key(headers, status, attempts):
    inner, seen = crm(refusals=1)
    async with httpx.AsyncClient(
        transport=example.AsyncRetryAfterTransport(inner), base_url="http://crm"
    ) as c:
        r = await c.post("/api/v1/customers", json={"email": "a@example.com"}, headers=headers)
    assert r.status_code == status and len(seen) == attempts
    if status == 200:  # the same body went again
        assert r.json()["body"] == '{"email":"a@example.com"}'
    else:
        assert r.json()["code"] == "OVERLOADED" and r.headers["Retry-After"] == "0"


async def test_the_caller_gets_the_refusal_past_the_attempts_or_the_longest_wait():
    inner, seen = crm(refusals=10)
    async with httpx.AsyncClient(
        transport=example.AsyncRetryAfterTransport(inner), base_url="http://crm"
    ) as c:
        r = await c.get("/api/v1/customers")
    assert r.status_code == 503 and r.json()["code"] == "OVERLOADED" and len(seen) == 3

    inner, seen = crm(refusals=1, status=429, retry_after="60")
    async with httpx.AsyncClient(
        transport=example.AsyncRetryAfterTransport(inner), base_url="http://crm"
    ) as c:
        r = await c.get("/api/v1/customers")
    assert r.status_code == 429 and r.headers["Retry-After"] == "60" and len(seen) == 1


def test_the_sync_transport_retries_a_rate_limited_get_given_a_date():
    inner, seen = crm(refusals=1, status=429, retry_after=formatdate(time.time() - 5, usegmt=True))
    with httpx.Client(transport=example.RetryAfterTransport(inner), base_url="http://crm") as c:
        r = c.get("/api/v1/customers")
    assert r.status_code == 200 and len(seen) == 2
