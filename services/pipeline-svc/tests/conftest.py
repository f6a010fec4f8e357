import uuid

import pytest
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import customer_created_event, publish, running, team_event, user_event
from pipeline_svc.app import create_app
from pipeline_svc.settings import Settings


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


@pytest.fixture
def new_customer(client):
    """new_customer(name) -> id of a customer pipeline-svc knows (via customer.created)."""

    async def make(name: str = "Acme Ltd") -> uuid.UUID:
        event = customer_created_event(name=name)
        await publish(client.bus, event)
        return uuid.UUID(event.data["customerId"])

    return make


@pytest.fixture
def new_user(client):
    """new_user(name) -> id of a sales rep pipeline-svc knows (via user.created)."""

    async def make(name: str = "Sam Seller", *, active: bool = True) -> uuid.UUID:
        event = user_event(name=name, active=active)
        await publish(client.bus, event)
        return uuid.UUID(event.data["userId"])

    return make


@pytest.fixture
def new_team(client):
    """new_team(name) -> id of a sales team pipeline-svc knows (via team.created)."""

    async def make(name: str = "EMEA") -> uuid.UUID:
        event = team_event(name=name)
        await publish(client.bus, event)
        return uuid.UUID(event.data["teamId"])

    return make


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
