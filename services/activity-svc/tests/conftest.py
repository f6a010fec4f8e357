import uuid

import pytest
from activity_svc.app import create_app
from activity_svc.models import Activity, ActivityParticipant
from activity_svc.settings import Settings
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import outbox
from crm_common.testing import plugin as shared
from crm_common.testing.plugin import running


@pytest.fixture
async def bus():
    bus = MemoryBus(consumers={"activity"})
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


outbox_payloads = shared.outbox_payloads


async def count_rows(client, table=Activity) -> int:
    return await shared.count_rows(client, table)


async def counts(client) -> tuple[int, int, int]:
    """(activities, participants, outbox rows): for checking that a refused request wrote nothing."""
    return (
        await count_rows(client),
        await count_rows(client, ActivityParticipant),
        await count_rows(client, outbox),
    )


async def deliver(client, *events) -> None:
    """Publish events on the test's bus; back once activity-svc's consumer has handled each one."""
    await shared.publish(client.bus, *events)


async def add_user(
    client, name="Ann Smith", *, time_zone="UTC", active=True, user_id=None, version=1
) -> uuid.UUID:
    """Feed a user into the service's directory the way the gateway does: a user.* event."""
    user_id = user_id or uuid.uuid4()
    event = shared.user_event(
        user_id, name=name, roles=["sales_rep"], active=active, version=version, time_zone=time_zone
    )
    await deliver(client, event)
    return user_id
