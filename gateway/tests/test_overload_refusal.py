"""Under overload the gateway refuses a service's excess itself, before anything costly: the refusal
comes before the method check, the body and authentication, and carries the security headers and
`Retry-After` (issue 22)."""

from crm_common.admission import AdmissionMiddleware
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_dashboard import settings_for


def admission_of(app) -> AdmissionMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, AdmissionMiddleware):
        layer = layer.app
    return layer


async def test_a_service_at_capacity_is_refused_at_the_gateway_before_auth_and_the_body(tmp_path):
    settings = settings_for(tmp_path, admission_queue=0, admission_upstream_write_limit=1)
    app = create_embedded_app(settings, only=("customer",))
    async with running(app) as gw:
        headers = await login(gw)
        budget = admission_of(app).budget_for({"method": "POST", "path": "/api/v1/customers"})
        await budget.acquire()  # customer-svc's one write slot at the gateway is taken
        try:
            for r in (
                await gw.post("/api/v1/customers", json={"firstName": "A"}, headers=headers),
                # No credential, a body that is just null, an undeclared method: still the refusal.
                await gw.post(
                    "/api/v1/customers", content=b"null", headers={"content-type": "application/json"}
                ),
                await gw.put("/api/v1/customers"),
            ):
                assert r.status_code == 503, r.text
                assert r.json()["code"] == "OVERLOADED" and r.headers["retry-after"] == "1"
                assert r.headers["x-content-type-options"] == "nosniff"
            # Reads and the gateway's own routes (sign-in, a write) have budgets of their own.
            assert (await gw.get("/api/v1/customers", headers=headers)).status_code == 200
            assert (await gw.get("/api/v1/customers", headers=await login(gw))).status_code == 200
        finally:
            budget.release()
        created = await gw.post(
            "/api/v1/customers",
            json={"firstName": "A", "lastName": "B", "email": "a.b@example.com"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
