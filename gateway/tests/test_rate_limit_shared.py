"""With CRM_REDIS_URL set, every gateway counts the same rate limit; without Redis, each its own."""

import uuid

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.ratelimit import RedisRateLimiter
from crm_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration


async def test_two_gateways_on_one_redis_hold_the_limit_in_total(redis_url, tmp_path):
    namespace = f"test-{uuid.uuid4().hex[:8]}."

    def gateway(name: str):
        settings = GatewaySettings(
            data_dir=tmp_path / name,
            admin_password="Limits-pass-123",
            redis_url=redis_url,
            events_namespace=namespace,
            rate_limit_requests=6,
            rate_limit_window_seconds=60,
        )
        return create_embedded_app(settings, only=())

    async with running(gateway("one")) as one, running(gateway("two")) as two:
        answers = [await (one if i % 2 == 0 else two).get("/api/v1/me") for i in range(10)]
    assert [r.status_code for r in answers] == [401] * 6 + [429] * 4
    assert [r.headers["ratelimit-remaining"] for r in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
    limited = answers[-1]
    assert limited.json()["code"] == "RATE_LIMITED" and 0 < int(limited.headers["retry-after"]) <= 60


async def test_an_unreachable_redis_falls_back_to_counting_in_process():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", 3, 60, prefix=f"test-{uuid.uuid4().hex[:8]}:")
    try:
        results = [await limiter.hit("ip:1") for _ in range(4)]
    finally:
        await limiter.close()
    assert [allowed for allowed, _, _ in results] == [True, True, True, False]


async def test_workers_without_redis_hold_the_limit_in_total(tmp_path):
    """`crm up --workers 2` without Redis: each worker allows its share (3 of 6), so a client whose
    requests land on both gets the limit in all, not twice it."""

    def worker(name: str):
        settings = GatewaySettings(
            data_dir=tmp_path / name,
            admin_password="Limits-pass-123",
            workers=2,
            rate_limit_requests=6,
            rate_limit_window_seconds=60,
        )
        return create_embedded_app(settings, only=())

    async with running(worker("one")) as one, running(worker("two")) as two:
        answers = [await (one if i % 2 == 0 else two).get("/api/v1/me") for i in range(8)]
    assert [r.status_code for r in answers] == [401] * 6 + [429] * 2
    assert [r.headers["ratelimit-limit"] for r in answers[:2]] == ["3", "3"]
