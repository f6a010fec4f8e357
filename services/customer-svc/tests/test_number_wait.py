"""A create waits for its year's customer number a bounded time (crm_common.numbering): while another
transaction holds the counter row (Postgres) or the write turn (SQLite) past the bound, the create is
answered 503 OVERLOADED with Retry-After and writes nothing; once it is free, the next create gets the
next number, with no gap."""

import asyncio
from contextlib import asynccontextmanager

import pytest
import sqlalchemy as sa
from crm_common import db as db_module
from crm_common.testing.plugin import running
from customer_svc.app import create_app
from customer_svc.models import Customer, CustomerNumberCounter

from .conftest import count_rows, outbox_payloads

BOUND = 0.2


@pytest.fixture
async def client(settings_with, bus):
    app = create_app(settings_with(numbering_lock_timeout_seconds=BOUND), bus=bus)
    async with running(app) as client:
        client.app = app
        yield client


@asynccontextmanager
async def counter_row_held(client, year: int):
    """Another transaction in progress that has taken the year's counter row."""
    held, release = asyncio.Event(), asyncio.Event()

    async def hold():
        async with client.app.state.runtime.db.transaction() as session:
            await session.execute(
                sa.update(CustomerNumberCounter)
                .where(CustomerNumberCounter.year == year)
                .values(last_value=CustomerNumberCounter.last_value)
            )
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    try:
        yield
    finally:
        release.set()
        await holder


def new(n: int) -> dict:
    return {"firstName": "Wait", "lastName": str(n), "email": f"wait{n}@example.com"}


async def test_a_create_waiting_past_the_bound_is_overloaded_and_writes_nothing(
    client, auth_headers, monkeypatch
):
    h = auth_headers()
    first = await client.post("/api/v1/customers", json=new(1), headers=h)
    assert first.status_code == 201, first.text
    prefix, number = first.json()["customerNumber"].rsplit("-", 1)
    year = int(prefix.rsplit("-", 1)[1])

    keyed = {**h, "Idempotency-Key": "wait-2"}
    async with counter_row_held(client, year):
        # SQLite: the bound on a writer's turn, shortened while the holder holds it (only then: the
        # outbox relay and the consumers take turns too, and on a loaded machine may hold one longer).
        with monkeypatch.context() as shorter:
            shorter.setattr(db_module, "SQLITE_WRITE_WAIT_SECONDS", BOUND)
            async with asyncio.timeout(30):  # a ceiling for a loaded machine, not a measure
                refused = [
                    await client.post("/api/v1/customers", json=new(2), headers=keyed),
                    await client.post("/api/v1/customers", json=new(3), headers=h),
                ]
    for r in refused:
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "OVERLOADED" and r.headers["Retry-After"] == "1"
    assert await count_rows(client, Customer) == 1
    assert len(await outbox_payloads(client, "customer.created")) == 1

    # The client sends them again: the key was not spent on the refusal, and the numbers follow on.
    again = await client.post("/api/v1/customers", json=new(2), headers=keyed)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") != "true"
    third = await client.post("/api/v1/customers", json=new(3), headers=h)
    assert third.status_code == 201, third.text
    assert [again.json()["customerNumber"], third.json()["customerNumber"]] == [
        f"{prefix}-{int(number) + 1:06d}",
        f"{prefix}-{int(number) + 2:06d}",
    ]
    assert await count_rows(client, Customer) == 3
    assert len(await outbox_payloads(client, "customer.created")) == 3
