import pytest
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import running
from customer_svc.app import create_app
from customer_svc.settings import Settings


@pytest.fixture
async def client(database, signing_key, tmp_path):
    url, schema = database
    settings = Settings(database_url=url, db_schema=schema, jwt_public_key=signing_key[1], data_dir=tmp_path)
    bus = MemoryBus()
    # Something must consume customer.created, as activity-svc does in the platform.
    await bus.declare("activity", ["customer.created"])
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        client.app = app
        yield client
    await bus.close()
