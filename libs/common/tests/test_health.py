"""Readiness: only an essential check takes a process out of rotation."""

import httpx
import pytest
from crm_common.observability import health_router
from fastapi import FastAPI


def app_with(checks: dict[str, bool]) -> httpx.AsyncClient:
    async def ready_checks() -> dict[str, bool]:
        return checks

    app = FastAPI()
    app.include_router(health_router(ready_checks, service="probe"))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://probe")


@pytest.mark.parametrize(
    ("checks", "status_code", "status"),
    [
        ({"database": True, "broker": True}, 200, "ok"),
        ({"database": True, "broker": False}, 200, "degraded"),
        ({"database": False, "broker": True}, 503, "unavailable"),
        ({"database": False, "broker": False}, 503, "unavailable"),
    ],
)
async def test_readiness(checks, status_code, status):
    async with app_with(checks) as client:
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (status_code, {"status": status, "checks": checks})
        assert (await client.get("/healthz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        for name, passed in checks.items():
            assert f'crm_ready_check{{check="{name}",service="probe"}} {1.0 if passed else 0.0}' in metrics
