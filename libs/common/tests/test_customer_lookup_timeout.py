"""A write naming a customer that customer-svc does not answer about in time: 503
CUSTOMER_SERVICE_UNAVAILABLE with `Retry-After`, like OVERLOADED, so a client (and the SDK transport
in docs/examples/retry_after.py) knows when to try again."""

import asyncio
import uuid

import httpx
import pytest
from crm_common import customer_refs
from crm_common.customer_lookup import CustomerLookup, CustomerServiceUnavailable, _RequestScope
from crm_common.errors import install_problem_handlers
from fastapi import FastAPI


def silent_customer_service() -> CustomerLookup:
    """customer-svc taking its requests and never answering; the lookup gives up after 50 ms."""
    never = asyncio.Event()

    async def app(scope, receive, send):
        await never.wait()

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://customer")
    return CustomerLookup(client, timeout=0.05)


async def test_a_lookup_that_times_out_cannot_ask():
    lookup = silent_customer_service()
    with pytest.raises(CustomerServiceUnavailable):
        await lookup.fetch(uuid.uuid4())
    await lookup.close()


async def test_a_write_whose_customer_lookup_times_out_is_503_with_retry_after():
    app = FastAPI()
    install_problem_handlers(app)
    app.state.customer_lookup = silent_customer_service()
    app.add_middleware(_RequestScope, owner=app)
    written: list[uuid.UUID] = []

    @app.post("/activities/{customer_id}")
    async def create(customer_id: uuid.UUID) -> dict:
        await customer_refs.learn(None, customer_id, field="customerId")  # type: ignore[arg-type]
        written.append(customer_id)
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client:
        r = await client.post(f"/activities/{uuid.uuid4()}", headers={"Authorization": "Bearer t"})
    assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "CUSTOMER_SERVICE_UNAVAILABLE"
    assert int(r.headers["retry-after"]) >= 1
    assert written == []
    await app.state.customer_lookup.close()
