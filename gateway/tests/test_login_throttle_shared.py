"""With CRM_REDIS_URL set, failed sign-ins are counted in Redis: every gateway replica sees every
failure, so spreading guesses over replicas gains nothing. The rules are LoginThrottle's
(test_login_defences.py), run here against Redis; without Redis each process counts its own."""

import asyncio
import uuid

import pytest
from crm_common.errors import ProblemError
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity.login import LoginThrottle, RedisLoginThrottle, make_login_throttle
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def replicas(redis_url):
    """Two throttles on one Redis and prefix, as two gateway processes have, on one clock."""
    clock, prefix = Clock(), f"test-{uuid.uuid4().hex[:8]}:login:"
    made = [RedisLoginThrottle(redis_url, prefix=prefix, clock=clock) for _ in range(2)]
    yield clock, made
    for throttle in made:
        await throttle.close()


async def refused(throttle, account: str, address: str) -> int | None:
    """Retry-After when refused, else None (and the attempt is left in flight)."""
    try:
        await throttle.start(account, address)
    except ProblemError as exc:
        assert exc.status == 429 and exc.code == "LOGIN_THROTTLED"
        return int(exc.headers["Retry-After"])
    return None


async def fail(throttle, account: str, address: str, n: int = 1) -> None:
    for _ in range(n):
        attempt = await throttle.start(account, address)
        assert not attempt.local  # counted in Redis, not in the fallback
        await throttle.finish(attempt, ok=False)


async def test_failures_on_one_replica_lock_the_account_on_the_other(replicas):
    clock, (one, two) = replicas
    await fail(one, "Ann@example.com", "10.0.0.1", 3)
    await fail(two, "ann@example.com", "10.0.0.2", 2)
    assert await refused(one, "ann@example.com", "10.0.0.3") == 15
    assert await refused(two, "ANN@example.com", "10.0.0.4") == 15
    clock.now += 15
    await fail(two, "ann@example.com", "10.0.0.5")
    assert await refused(one, "ann@example.com", "10.0.0.5") == 30  # the lock doubles
    clock.now += 30
    attempt = await one.start("ann@example.com", "10.0.0.6")
    await one.finish(attempt, ok=True)  # the right password clears it, everywhere
    assert await refused(two, "ann@example.com", "10.0.0.6") is None
    assert await refused(two, "bob@example.com", "10.0.0.6") is None


async def test_attempts_in_flight_on_every_replica_count(replicas):
    _, (one, two) = replicas
    outcomes = await asyncio.gather(
        *(refused(one if i % 2 else two, "a@x", f"10.0.1.{i}") for i in range(50))
    )
    assert sum(o is None for o in outcomes) == 5


async def test_an_address_is_throttled_across_replicas_and_the_lock_is_forgotten(replicas):
    clock, (one, two) = replicas
    for i in range(20):
        await fail(one if i % 2 else two, f"user{i}@x", "203.0.113.9")
        clock.now += 1
    assert await refused(one, "new@x", "203.0.113.9") == 300 - 20
    assert await refused(two, "new@x", "198.51.100.1") is None
    clock.now += 281
    assert await refused(two, "new2@x", "203.0.113.9") is None
    await fail(one, "c@x", "192.0.2.1", 5)
    clock.now += 3601  # an hour without failures forgets the account
    assert await refused(two, "c@x", "192.0.2.2") is None


async def test_an_unreachable_redis_falls_back_to_counting_in_process():
    throttle = RedisLoginThrottle("redis://127.0.0.1:1/0", prefix=f"test-{uuid.uuid4().hex[:8]}:")
    try:
        for _ in range(5):
            attempt = await throttle.start("a@x", "10.0.0.1")
            assert attempt.local
            await throttle.finish(attempt, ok=False)
        assert await refused(throttle, "a@x", "10.0.0.1") == 15
    finally:
        await throttle.close()


async def test_two_gateways_on_one_redis_share_the_account_lock(redis_url, tmp_path):
    namespace = f"test-{uuid.uuid4().hex[:8]}."

    def gateway(name: str):
        settings = GatewaySettings(
            data_dir=tmp_path / name,
            admin_password=PASSWORD,
            admin_email=ADMIN,
            redis_url=redis_url,
            events_namespace=namespace,
            rate_limit_enabled=False,
        )
        return create_embedded_app(settings, only=())

    async with running(gateway("one")) as one, running(gateway("two")) as two:
        for i in range(5):
            r = await (one if i % 2 == 0 else two).post(
                "/api/v1/auth/token", data={"username": ADMIN, "password": "not the password"}
            )
            assert r.status_code == 400 and r.json()["code"] == "INVALID_CREDENTIALS", r.text
        for gw in (one, two):  # even the right password waits, on either gateway
            r = await gw.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
            assert r.status_code == 429 and r.json()["code"] == "LOGIN_THROTTLED", r.text
            assert 1 <= int(r.headers["retry-after"]) <= 15


async def test_workers_without_redis_each_count_their_share_of_the_limits(tmp_path):
    """`crm up --workers 2` without Redis: each worker locks an account after its share of the
    failures (3 of 5, rounded up), so guesses spread over the workers get no more than the limit."""
    throttles = [
        make_login_throttle(GatewaySettings(data_dir=tmp_path, workers=2, redis_url=None)) for _ in range(2)
    ]
    for throttle in throttles:
        assert isinstance(throttle, LoginThrottle)
        for _ in range(3):
            attempt = await throttle.start("ann@example.com", "10.0.0.1")
            await throttle.finish(attempt, ok=False)
        assert await refused(throttle, "ann@example.com", "10.0.0.2") == 15
    assert throttles[0].address_failures == 10  # of 20
    assert make_login_throttle(GatewaySettings(data_dir=tmp_path, redis_url=None)).account_failures == 5
