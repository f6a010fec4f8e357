import uuid

import pytest
from activity_svc.app import create_app
from activity_svc.models import Activity, ActivityParticipant
from activity_svc.settings import Settings
from crm_common.contracts.identity import UserCreated, UserUpdated
from crm_common.events.envelope import new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import outbox
from crm_common.testing.plugin import running
from sqlalchemy import func, select


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
        yield client


class World:
    """What the tests do besides HTTP calls: deliver events, add users, look inside the database."""

    def __init__(self, client, bus):
        self.client = client
        self.bus = bus

    async def deliver(self, *events):
        assert await self.bus.publish(list(events), timeout=10) == [None] * len(events)

    async def user(self, name="Ann Smith", *, time_zone="UTC", active=True, user_id=None, version=1):
        user_id = user_id or uuid.uuid4()
        cls = UserCreated if version == 1 else UserUpdated
        payload = cls(
            user_id=user_id,
            email=f"{user_id.hex[:8]}@example.com",
            full_name=name,
            roles=["sales_rep"],
            is_active=active,
            time_zone=time_zone,
        )
        await self.deliver(
            new_event(
                cls.event_type, service="gateway", subject=user_id, data=payload.dump(), sequence=version
            )
        )
        return user_id

    async def count(self, table=Activity) -> int:
        async with self.client.app.state.runtime.db.transaction() as s:
            return (await s.execute(select(func.count()).select_from(table))).scalar_one()

    async def counts(self) -> tuple[int, int, int]:
        """(activities, participants, outbox rows): for checking that a refused request wrote nothing."""
        return (await self.count(), await self.count(ActivityParticipant), await self.count(outbox))

    async def outbox(self) -> list[dict]:
        async with self.client.app.state.runtime.db.transaction() as s:
            rows = await s.execute(select(outbox.c.payload).order_by(outbox.c.position))
            return [r.payload for r in rows]


@pytest.fixture
def world(client, bus):
    return World(client, bus)
