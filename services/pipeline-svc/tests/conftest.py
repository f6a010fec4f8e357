import uuid

import pytest
from crm_common.contracts.customer import CustomerCreated
from crm_common.contracts.identity import TeamCreated, UserCreated
from crm_common.events.envelope import event_from
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import outbox
from crm_common.testing.plugin import running
from pipeline_svc.app import create_app
from pipeline_svc.settings import Settings
from sqlalchemy import func, select


@pytest.fixture
async def bus():
    bus = MemoryBus(consumers={"pipeline"})
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
        yield client


async def publish(bus: MemoryBus, *events) -> None:
    results = await bus.publish(list(events), timeout=10)
    assert results == [None] * len(events), results


def customer_created_event(customer_id=None, *, full_name="Acme Ltd", number="CUST-2026-000001", version=1):
    payload = CustomerCreated(
        customer_id=customer_id or uuid.uuid4(),
        customer_number=number,
        type="COMPANY",
        full_name=full_name,
        email=f"{uuid.uuid4().hex[:8]}@example.com",
        status="CUSTOMER",
    )
    return event_from(payload, service="customer", subject=payload.customer_id, sequence=version)


@pytest.fixture
def new_customer(client):
    """new_customer(full_name=...) -> id of a customer pipeline-svc knows (via customer.created)."""

    async def make(full_name: str = "Acme Ltd", **kwargs) -> uuid.UUID:
        event = customer_created_event(full_name=full_name, **kwargs)
        await publish(client.bus, event)
        return uuid.UUID(event.data["customerId"])

    return make


@pytest.fixture
def new_user(client):
    async def make(full_name: str = "Sam Seller", *, active: bool = True) -> uuid.UUID:
        payload = UserCreated(
            user_id=uuid.uuid4(),
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            full_name=full_name,
            roles=["sales_rep"],
            is_active=active,
        )
        await publish(client.bus, event_from(payload, service="gateway", subject=payload.user_id, sequence=1))
        return payload.user_id

    return make


@pytest.fixture
def new_team(client):
    async def make(name: str = "EMEA") -> uuid.UUID:
        payload = TeamCreated(team_id=uuid.uuid4(), name=name, type="SALES")
        await publish(client.bus, event_from(payload, service="gateway", subject=payload.team_id, sequence=1))
        return payload.team_id

    return make


@pytest.fixture
def count_rows(client):
    """count_rows(Table) -> rows in that table."""

    async def count(table) -> int:
        async with client.app.state.runtime.db.transaction() as s:
            return (await s.execute(select(func.count()).select_from(table))).scalar_one()

    return count


@pytest.fixture
def outbox_events(client):
    """outbox_events(routing_key=None) -> the events written so far (envelopes), oldest first."""

    async def read(routing_key: str | None = None) -> list[dict]:
        async with client.app.state.runtime.db.transaction() as s:
            rows = (await s.execute(select(outbox).order_by(outbox.c.position))).all()
        return [r.payload for r in rows if routing_key is None or r.routing_key == routing_key]

    return read


@pytest.fixture
def stages(client, auth_headers):
    """stages() -> {name: stage} of the pipeline as it is now."""

    async def get() -> dict[str, dict]:
        r = await client.get("/api/v1/stages", headers=auth_headers("sales_rep"))
        assert r.status_code == 200, r.text
        return {s["name"]: s for s in r.json()["items"]}

    return get


@pytest.fixture
def new_opportunity(client, auth_headers, new_customer):
    """new_opportunity(**fields) -> the created opportunity (201 asserted)."""

    async def make(headers=None, **fields) -> dict:
        if "customerId" not in fields:
            fields["customerId"] = str(await new_customer())
        body = {"title": "Big deal", **fields}
        r = await client.post(
            "/api/v1/opportunities", json=body, headers=headers or auth_headers("sales_rep")
        )
        assert r.status_code == 201, r.text
        return r.json()

    return make


@pytest.fixture
def new_product(client, auth_headers):
    async def make(**fields) -> dict:
        body = {"name": "Widget", "code": f"W-{uuid.uuid4().hex[:6]}", "price": "100.00", **fields}
        r = await client.post("/api/v1/products", json=body, headers=auth_headers("sales_rep"))
        assert r.status_code == 201, r.text
        return r.json()

    return make
