import asyncio
import os
import uuid

import pytest
from crm_common import directory
from crm_common.contracts.identity import TeamCreated, UserCreated, UserUpdated
from crm_common.db import async_url
from crm_common.events.envelope import event_from
from crm_common.events.inbox import idempotent_dispatcher
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import outbox
from crm_common.testing.plugin import DEFAULT_PG, running
from customer_svc.app import create_app
from customer_svc.handlers import HANDLERS
from customer_svc.models import Customer
from customer_svc.settings import Settings
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine


@pytest.fixture(scope="session", autouse=True)
def _pg_trgm_left_as_found():
    """The migration installs pg_trgm (into `public`) when it is missing; drop it again afterwards
    if this test session is what installed it, so the shared server is left as found."""
    url = async_url(os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG))

    async def installed() -> bool:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                found = await conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'"))
                return found.first() is not None
        finally:
            await engine.dispose()

    async def drop() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP EXTENSION IF EXISTS pg_trgm"))  # no CASCADE: in use stays
        finally:
            await engine.dispose()

    try:
        before = asyncio.run(asyncio.wait_for(installed(), 5))
    except Exception:
        yield
        return
    yield
    if not before:
        try:
            asyncio.run(drop())
        except Exception:
            pass


@pytest.fixture
async def bus():
    bus = MemoryBus()
    # Something must consume customer.created, as activity-svc does in the platform.
    await bus.declare("activity", ["customer.created"])
    yield bus
    await bus.close()


@pytest.fixture
async def client(database, signing_key, tmp_path, bus):
    url, schema = database
    settings = Settings(database_url=url, db_schema=schema, jwt_public_key=signing_key[1], data_dir=tmp_path)
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        client.app = app
        client.bus = bus
        client.is_postgres = not url.startswith("sqlite")
        yield client


async def count_rows(client, table=Customer) -> int:
    async with client.app.state.runtime.db.transaction() as s:
        return (await s.execute(select(func.count()).select_from(table))).scalar_one()


async def outbox_payloads(client, routing_key: str | None = None) -> list[dict]:
    async with client.app.state.runtime.db.transaction() as s:
        query = select(outbox).order_by(outbox.c.position)
        if routing_key:
            query = query.where(outbox.c.routing_key == routing_key)
        return [r.payload for r in (await s.execute(query)).all()]


async def deliver(client, *events, concurrently=False) -> None:
    """Hand events to customer-svc exactly as its bus consumer does (inbox + handlers, one
    transaction each). On the shared MemoryBus every other service's queue is declared too, with
    nobody consuming in these tests, so a publish would wait for them."""
    dispatch = idempotent_dispatcher(
        client.app.state.runtime.db, "customer", {**directory.HANDLERS, **HANDLERS}
    )
    if concurrently:
        await asyncio.gather(*(dispatch(e) for e in events))
    else:
        for event in events:
            await dispatch(event)


async def add_user(client, name="Grace Hopper", *, active=True, user_id=None, version=1) -> uuid.UUID:
    """Feed a user into the service's directory the way the gateway does: a user.* event."""
    user_id = user_id or uuid.uuid4()
    cls = UserCreated if version == 1 else UserUpdated
    payload = cls(
        user_id=user_id,
        email=f"{user_id.hex[:8]}@crm.example",
        full_name=name,
        roles=["sales_rep"],
        is_active=active,
    )
    await deliver(client, event_from(payload, service="gateway", subject=user_id, sequence=version))
    return user_id


async def add_team(client, name="EMEA", *, active=True) -> uuid.UUID:
    team_id = uuid.uuid4()
    payload = TeamCreated(team_id=team_id, name=name, type="SALES", is_active=active)
    await deliver(client, event_from(payload, service="gateway", subject=team_id, sequence=1))
    return team_id


async def create(client, headers, **body) -> dict:
    body.setdefault("email", f"{uuid.uuid4().hex[:10]}@example.com")
    if "companyName" not in body and "firstName" not in body and "lastName" not in body:
        body["firstName"] = "Test"
    r = await client.post("/api/v1/customers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def opportunity_event(
    customer_id,
    *,
    amount="100.00",
    currency="USD",
    status="OPEN",
    opportunity_id=None,
    sequence=1,
    routing_key="opportunity.created",
):
    """An opportunity.* event as pipeline-svc publishes it: the opportunity's whole current state,
    its version as `sequence`."""
    from crm_common.events.envelope import new_event

    opportunity_id = opportunity_id or uuid.uuid4()
    data = {
        "opportunityId": str(opportunity_id),
        "customerId": str(customer_id),
        "title": "Deal",
        "status": status,
        "amount": amount,
        "currency": currency,
        "probability": 50,
        "stageId": str(uuid.uuid4()),
        "stageName": "Proposal",
        "ownerId": str(uuid.uuid4()),
    }
    if routing_key in ("opportunity.won", "opportunity.lost"):
        data["closeDate"] = "2030-01-01"
    if routing_key == "opportunity.lost":
        data["reason"] = "price"
    if routing_key == "opportunity.stage_changed":
        data["fromStageId"], data["fromStageName"] = str(uuid.uuid4()), "Qualification"
    return new_event(routing_key, service="pipeline", subject=opportunity_id, data=data, sequence=sequence)
