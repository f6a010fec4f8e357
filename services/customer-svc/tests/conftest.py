import asyncio
import os
import uuid

import pytest
from crm_common.contracts.activity import ActivityCompleted
from crm_common.db import async_url
from crm_common.events.envelope import event_from, new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.pagination import SYNC_SETTLE
from crm_common.testing import plugin as shared
from crm_common.testing.plugin import DEFAULT_PG, running
from customer_svc.app import create_app
from customer_svc.events.handlers import HANDLERS
from customer_svc.models import Customer
from customer_svc.settings import Settings
from sqlalchemy import text
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
def settings_with(database, signing_key, tmp_path):
    """customer-svc's settings for this test's database, with overrides, for a test that runs an
    app of its own (a short interval, a bound, a token)."""
    url, schema = database

    def make(**overrides) -> Settings:
        return Settings(
            database_url=url, db_schema=schema, jwt_public_key=signing_key[1], data_dir=tmp_path, **overrides
        )

    return make


@pytest.fixture
async def client(database, settings_with, bus):
    app = create_app(settings_with(), bus=bus)
    async with running(app) as client:
        client.app = app
        client.bus = bus
        client.is_postgres = not database[0].startswith("sqlite")
        yield client


outbox_payloads = shared.outbox_payloads


async def count_rows(client, table=Customer) -> int:
    return await shared.count_rows(client, table)


async def deliver(client, *events, concurrently=False) -> None:
    """Hand events to customer-svc exactly as its bus consumer does (crm_common.testing.plugin)."""
    await shared.deliver(client, "customer", HANDLERS, *events, concurrently=concurrently)


async def add_user(client, name="Grace Hopper", *, active=True, user_id=None, version=1) -> uuid.UUID:
    """Feed a user into the service's directory the way the gateway does: a user.* event."""
    user_id = user_id or uuid.uuid4()
    await deliver(
        client, shared.user_event(user_id, name=name, roles=["sales_rep"], active=active, version=version)
    )
    return user_id


async def add_team(client, name="EMEA", *, active=True) -> uuid.UUID:
    team_id = uuid.uuid4()
    await deliver(client, shared.team_event(team_id, name=name, active=active))
    return team_id


async def create(client, headers, **body) -> dict:
    body.setdefault("email", f"{uuid.uuid4().hex[:10]}@example.com")
    if "companyName" not in body and "firstName" not in body and "lastName" not in body:
        body["firstName"] = "Test"
    r = await client.post("/api/v1/customers", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def contact(customer_id, at):
    """An activity.completed event for a call with the customer at `at` (its lastContactDate)."""
    payload = ActivityCompleted(
        activity_id=uuid.uuid4(),
        type="CALL",
        subject="Call",
        owner_id=uuid.uuid4(),
        completed_at=at,
        customer_id=customer_id,
    )
    return event_from(payload, service="activity", subject=payload.activity_id, sequence=2)


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


async def settled(client) -> None:
    """Cursor pages on Postgres stop SYNC_SETTLE short of now (see crm_common.pagination)."""
    if client.is_postgres:
        await asyncio.sleep(SYNC_SETTLE.total_seconds() + 0.2)
