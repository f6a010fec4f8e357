"""Sign-in that cannot be used against the service: throttling per account and per address, the
client address from X-Forwarded-For only behind a trusted proxy, bounded hashing, no-store."""

import asyncio
import threading

import pytest
from crm_common.errors import ProblemError
from crm_common.testing.plugin import running
from crm_gateway.clientaddr import client_address, parse_networks
from crm_gateway.embedded import create_embedded_app
from crm_gateway.identity.login import LoginThrottle, PasswordWork
from crm_gateway.identity.passwords import password_problems
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(throttle: LoginThrottle, account: str, address: str) -> int | None:
    """Retry-After when refused, else None (and the attempt is left in flight)."""
    try:
        throttle.begin(account, address)
    except ProblemError as exc:
        assert exc.status == 429 and exc.code == "LOGIN_THROTTLED"
        return int(exc.headers["Retry-After"])
    return None


def fail(throttle: LoginThrottle, account: str, address: str, n: int = 1) -> None:
    for _ in range(n):
        assert refused(throttle, account, address) is None
        throttle.end(account, address, ok=False)


def test_an_account_is_locked_after_five_failures_and_the_lock_grows():
    clock = Clock()
    t = LoginThrottle(clock=clock)
    fail(t, "Ann@example.com", "10.0.0.1", 5)
    assert refused(t, "ann@example.com", "10.0.0.2") == 15  # any address, any case
    clock.now += 15
    fail(t, "ann@example.com", "10.0.0.3")
    assert refused(t, "ann@example.com", "10.0.0.3") == 30
    clock.now += 30
    fail(t, "ann@example.com", "10.0.0.4")
    assert refused(t, "ann@example.com", "10.0.0.4") == 60
    clock.now += 60
    assert refused(t, "ann@example.com", "10.0.0.4") is None
    t.end("ann@example.com", "10.0.0.4", ok=True)  # the right password clears it
    assert refused(t, "ann@example.com", "10.0.0.4") is None
    assert refused(t, "bob@example.com", "10.0.0.4") is None  # others are not affected


def test_the_lock_is_capped_and_forgotten_after_an_hour():
    clock = Clock()
    t = LoginThrottle(clock=clock, lock_max_seconds=900)
    for _ in range(12):
        fail(t, "a@x", "1.1.1.1")
        clock.now += 901
    fail(t, "a@x", "1.1.1.1")
    assert refused(t, "a@x", "1.1.1.1") == 900
    clock.now += 3601
    assert refused(t, "a@x", "1.1.1.1") is None


def test_attempts_in_flight_count_so_a_burst_is_not_a_burst_of_hashes():
    t = LoginThrottle(clock=Clock())
    admitted = [refused(t, "a@x", f"10.0.0.{i}") is None for i in range(50)]
    assert sum(admitted) == 5


def test_an_address_with_too_many_failures_waits_for_its_window():
    clock = Clock()
    t = LoginThrottle(clock=clock, address_failures=20, address_window_seconds=300)
    for i in range(20):
        fail(t, f"user{i}@x", "203.0.113.9")
        clock.now += 1
    assert refused(t, "new@x", "203.0.113.9") == 300 - 20
    assert refused(t, "new@x", "198.51.100.1") is None  # another address is fine
    clock.now += 281
    assert refused(t, "new2@x", "203.0.113.9") is None


def scope(peer: str, forwarded: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"type": "http", "client": (peer, 1234), "headers": headers}


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy():
    none = parse_networks("")
    proxies = parse_networks("10.0.0.0/8, 192.168.1.5")
    assert client_address(scope("203.0.113.9", "1.2.3.4"), none) == "203.0.113.9"
    assert client_address(scope("127.0.0.1", "1.2.3.4"), none) == "127.0.0.1"
    assert client_address(scope("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"
    assert client_address(scope("10.1.2.3", "1.2.3.4"), proxies) == "1.2.3.4"
    # A client's own (spoofed) entries are left of what the proxies appended.
    assert client_address(scope("10.1.2.3", "6.6.6.6, 1.2.3.4, 192.168.1.5"), proxies) == "1.2.3.4"
    assert client_address(scope("10.1.2.3", "garbage, 1.2.3.4"), proxies) == "1.2.3.4"
    assert client_address(scope("10.1.2.3", "garbage"), proxies) == "10.1.2.3"
    assert client_address(scope("10.1.2.3"), proxies) == "10.1.2.3"


def test_the_password_rule():
    assert password_problems("violet trombone 42", email="ann@example.com") == []
    assert password_problems("b" * 40) == ["one character repeated"]
    assert password_problems("Ann@Example.com", email="ann@example.com") == ["the user's email"]
    assert password_problems("annabelle-smith", email="annabelle-smith@example.com") == ["the user's email"]
    assert password_problems("PASSWORD123") == ["a commonly used password"]
    assert password_problems("abc") == ["shorter than 10 characters"]


async def test_password_work_runs_a_bounded_number_at_once_and_refuses_past_its_queue():
    work = PasswordWork(concurrency=2, queue=3)
    release, lock = threading.Event(), threading.Lock()
    active = peak = 0

    def job():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(10)
        with lock:
            active -= 1

    tasks = [asyncio.ensure_future(work.run(job)) for _ in range(5)]
    await asyncio.sleep(0.1)  # two run, three wait: the queue is full
    with pytest.raises(ProblemError) as exc:
        await work.run(job)
    assert exc.value.status == 503 and exc.value.headers["Retry-After"] == "1"
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2


@pytest.fixture
async def gateway(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path,
        admin_password=PASSWORD,
        admin_email=ADMIN,
        rate_limit_enabled=False,
        trusted_proxies="127.0.0.0/8",
    )
    async with running(create_embedded_app(settings, only=())) as client:
        yield client


async def test_failed_sign_ins_lock_the_account_and_the_token_response_is_not_cached(gateway):
    gw = gateway
    ok = await gw.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
    assert ok.status_code == 200
    assert ok.headers["cache-control"] == "no-store" and ok.headers["pragma"] == "no-cache"
    for i in range(5):
        r = await gw.post(
            "/api/v1/auth/token",
            data={"username": ADMIN, "password": "wrong"},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        assert r.status_code == 400 and r.json()["code"] == "INVALID_CREDENTIALS"
        assert r.headers["cache-control"] == "no-store"
    locked = await gw.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
    assert locked.status_code == 429 and locked.json()["code"] == "LOGIN_THROTTLED"
    assert 1 <= int(locked.headers["retry-after"]) <= 15


async def test_an_address_is_throttled_and_a_forged_forwarded_for_does_not_escape(tmp_path):
    settings = GatewaySettings(
        data_dir=tmp_path,
        admin_password=PASSWORD,
        admin_email=ADMIN,
        rate_limit_enabled=False,
        login_address_failures=3,
    )
    async with running(create_embedded_app(settings, only=())) as gw:
        for i in range(3):
            r = await gw.post(
                "/api/v1/auth/token",
                data={"username": f"nobody{i}@example.com", "password": "wrong"},
                headers={"X-Forwarded-For": f"203.0.113.{i}"},  # not believed: no trusted proxy
            )
            assert r.status_code == 400
        r = await gw.post(
            "/api/v1/auth/token",
            data={"username": ADMIN, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.77"},
        )
        assert r.status_code == 429 and r.json()["code"] == "LOGIN_THROTTLED"
