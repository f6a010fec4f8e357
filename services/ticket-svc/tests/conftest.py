import importlib
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import (
    count_rows,
    customer_created_event,
    outbox_payloads,
    publish,
    running,
    team_event,
    user_event,
)
from sqlalchemy import delete
from ticket_svc.app import create_app
from ticket_svc.models import SlaPolicy, SlaRevision
from ticket_svc.settings import Settings

SHIPPED_POLICY_ID = importlib.import_module(
    "ticket_svc.migrations.versions.5a1d2c3e4f60_default_sla_policy"
).POLICY_ID

# A Monday, 09:00 UTC.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

OFFICE_HOURS = [{"day": d, "start": "09:00", "end": "17:00"} for d in ("MON", "TUE", "WED", "THU", "FRI")]


class Clock:
    """The app's clock in tests: time stands still until a test moves it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def set(self, *args) -> datetime:
        self.now = datetime(*args, tzinfo=UTC) if not isinstance(args[0], datetime) else args[0]
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def bus():
    """The in-process bus hosting ticket-svc alone: a publish returns once ticket-svc handled it."""
    bus = MemoryBus(retry_delay=0.01, consumers={"ticket"})
    yield bus
    await bus.close()


@pytest.fixture
def settings(database, signing_key, tmp_path) -> Settings:
    url, schema = database
    return Settings(
        database_url=url,
        db_schema=schema,
        jwt_public_key=signing_key[1],
        data_dir=tmp_path,
        escalation_enabled=False,
        relay_poll_interval=0.05,
    )


@asynccontextmanager
async def ticket_service(settings, bus, clock, *, shipped_policy: bool):
    app = create_app(settings, bus=bus)
    app.state.clock = clock
    async with running(app) as client:
        client.app = app
        client.db = app.state.runtime.db
        if not shipped_policy:
            async with client.db.transaction() as session:
                await session.execute(delete(SlaPolicy).where(SlaPolicy.id == SHIPPED_POLICY_ID))
                await session.execute(delete(SlaRevision).where(SlaRevision.policy_id == SHIPPED_POLICY_ID))
        yield client


@pytest.fixture
async def client(settings, bus, clock):
    """ticket-svc as an install whose admin removed the shipped default policy: the SLA tests set up
    exactly the policies they are about."""
    async with ticket_service(settings, bus, clock, shipped_policy=False) as client:
        yield client


@pytest.fixture
async def fresh_install(settings, bus, clock):
    """ticket-svc as a fresh install has it, with the shipped default SLA policy."""
    async with ticket_service(settings, bus, clock, shipped_policy=True) as client:
        yield client


# --- feeding the local read models: the other contexts' events, through the bus --------------------


@pytest.fixture
def add_customer(bus):
    async def add(name="Acme Ltd", number=None, **extra) -> uuid.UUID:
        event = customer_created_event(name=name, number=number, **extra)
        await publish(bus, event)
        return uuid.UUID(event.subject)

    return add


@pytest.fixture
def add_user(bus):
    async def add(name="Sam Agent", *, active=True) -> uuid.UUID:
        event = user_event(name=name, roles=["support_agent"], active=active)
        await publish(bus, event)
        return uuid.UUID(event.subject)

    return add


@pytest.fixture
def add_team(bus):
    async def add(name="Support EMEA") -> uuid.UUID:
        event = team_event(name=name, type="SUPPORT")
        await publish(bus, event)
        return uuid.UUID(event.subject)

    return add


# --- API helpers ----------------------------------------------------------------------------------


@pytest.fixture
def agent_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def agent(auth_headers, agent_id):
    """Headers of a support agent (support_access)."""
    return auth_headers("support_agent", user_id=agent_id)


@pytest.fixture
def admin(auth_headers):
    return auth_headers("admin")


@pytest.fixture
def new_ticket(client, agent, add_customer):
    async def create(**fields) -> dict:
        if "customerId" not in fields:
            fields["customerId"] = str(await add_customer())
        body = {"subject": "Printer on fire", "description": "It is on fire.", "type": "PROBLEM", **fields}
        r = await client.post("/api/v1/tickets", json=body, headers=agent)
        assert r.status_code == 201, r.text
        return r.json()

    return create


@pytest.fixture
def new_policy(client, admin):
    async def create(**fields) -> dict:
        body = {
            "name": "Standard",
            "timeZone": "UTC",
            "businessHours": OFFICE_HOURS,
            "targets": [
                {"priority": "LOW", "firstResponseMinutes": 480, "resolutionMinutes": 4800},
                {"priority": "NORMAL", "firstResponseMinutes": 240, "resolutionMinutes": 2400},
                {"priority": "HIGH", "firstResponseMinutes": 60, "resolutionMinutes": 960},
                {"priority": "URGENT", "firstResponseMinutes": 30, "resolutionMinutes": 240},
            ],
            **fields,
        }
        r = await client.post("/api/v1/sla-policies", json=body, headers=admin)
        assert r.status_code == 201, r.text
        return r.json()

    return create


class Api:
    """Short hands for the calls most tests make, asserting they succeed."""

    def __init__(self, client, headers):
        self.client = client
        self.headers = headers

    async def status(self, ticket, to, **body) -> dict:
        r = await self.client.post(
            f"/api/v1/tickets/{ticket['id']}/status", json={"status": to, **body}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def communicate(self, ticket, direction="OUTBOUND", channel="EMAIL", **body) -> dict:
        r = await self.client.post(
            f"/api/v1/tickets/{ticket['id']}/communications",
            json={"direction": direction, "channel": channel, "body": "Hello", **body},
            headers=self.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def escalate(self, ticket, reason="Customer is a VIP") -> dict:
        r = await self.client.post(
            f"/api/v1/tickets/{ticket['id']}/escalate", json={"reason": reason}, headers=self.headers
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def get(self, ticket) -> dict:
        r = await self.client.get(f"/api/v1/tickets/{ticket['id']}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    async def events(self, routing_key: str | None = None) -> list[dict]:
        return await outbox_payloads(self.client, routing_key)

    async def count(self, table) -> int:
        return await count_rows(self.client, table)


@pytest.fixture
def api(client, agent) -> Api:
    return Api(client, agent)
