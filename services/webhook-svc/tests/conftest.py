import uuid

import pytest
from crm_common.events.envelope import CloudEvent, new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing import plugin as shared
from crm_common.testing.plugin import running
from webhook_svc.app import create_app
from webhook_svc.models import Attempt, Delivery, Subscription
from webhook_svc.receiver import Receiver
from webhook_svc.service.targets import system_resolve
from webhook_svc.settings import Settings

# Short enough for a test to see every attempt: 5 attempts over ~1.5 s.
TEST_SCHEDULE = [0, 0.1, 0.2, 0.4, 0.8]


@pytest.fixture
async def bus():
    bus = MemoryBus(consumers={"webhook"})
    yield bus
    await bus.close()


@pytest.fixture
def settings_for(database, signing_key, tmp_path):
    url, schema = database

    def make(**overrides) -> Settings:
        values = {
            "database_url": url,
            "db_schema": schema,
            "jwt_public_key": signing_key[1],
            "data_dir": tmp_path,
            "allowed_networks": ["127.0.0.0/8"],
            "retry_schedule_seconds": TEST_SCHEDULE,
            "poll_interval": 0.05,
            "timeout_seconds": 2.0,
            **overrides,
        }
        return Settings(**values)

    return make


class FakeDNS:
    """Names the tests make up resolve where the test says (no real DNS in tests); others, such
    as `localhost`, through the system resolver."""

    def __init__(self):
        self.names = {"hooks.example.com": ["93.184.216.34"]}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host in self.names:
            return list(self.names[host])
        if host.endswith((".example.com", ".invalid")):
            raise OSError(f"{host}: name not known")
        return await system_resolve(host, port)


def with_fake_dns(app) -> FakeDNS:
    dns = FakeDNS()
    app.state.webhook_guard.resolve = dns
    return dns


@pytest.fixture
async def client(settings_for, bus):
    app = create_app(settings_for(), bus=bus)
    app.state.dns = with_fake_dns(app)
    async with running(app) as client:
        client.app = app
        yield client


@pytest.fixture
async def receiver():
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


class World:
    """What the tests do besides HTTP calls: publish events, look inside the database."""

    def __init__(self, client, bus, auth_headers):
        self.client = client
        self.bus = bus
        self.admin = auth_headers("admin")

    async def publish(self, *events: CloudEvent) -> None:
        await shared.publish(self.bus, *events)

    async def subscribe(self, url: str, event_types=("customer.*", "opportunity.won"), **extra) -> dict:
        r = await self.client.post(
            "/api/v1/webhooks",
            json={"url": url, "eventTypes": list(event_types), **extra},
            headers=self.admin,
        )
        assert r.status_code == 201, r.text
        return r.json()

    async def count(self, table=Delivery) -> int:
        return await shared.count_rows(self.client, table)

    async def counts(self) -> tuple[int, int, int]:
        return (await self.count(Subscription), await self.count(Delivery), await self.count(Attempt))


@pytest.fixture
def world(client, bus, auth_headers):
    return World(client, bus, auth_headers)


def customer_created(name="Ann Smith", customer_id=None, *, status="LEAD", **data) -> CloudEvent:
    """customer.created for a person (a LEAD unless told otherwise); `data` sets other contract fields."""
    return shared.customer_created_event(customer_id, name=name, type="INDIVIDUAL", status=status, **data)


def opportunity_event(key="opportunity.won", opportunity_id=None) -> CloudEvent:
    opportunity_id = opportunity_id or uuid.uuid4()
    return new_event(
        key,
        service="pipeline",
        subject=opportunity_id,
        data={
            "opportunityId": str(opportunity_id),
            "customerId": str(uuid.uuid4()),
            "title": "Big deal",
            "status": {"opportunity.won": "WON", "opportunity.lost": "LOST"}.get(key, "OPEN"),
            "amount": "1250.00",
            "currency": "EUR",
            "probability": 100 if key == "opportunity.won" else 50,
            "stageId": str(uuid.uuid4()),
            "stageName": "Closed",
            "ownerId": str(uuid.uuid4()),
            **({"closeDate": "2030-01-01"} if key in ("opportunity.won", "opportunity.lost") else {}),
            **({"reason": "price"} if key == "opportunity.lost" else {}),
        },
        sequence=3,
    )
