"""Every consuming service purges its processed-event inbox by itself (crm_common.events.inbox):
rows older than CRM_INBOX_RETENTION_DAYS go, younger ones stay, while the service runs."""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from activity_svc.app import create_app
from activity_svc.settings import Settings
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.tables import inbox
from crm_common.testing.plugin import eventually, running


async def test_the_service_purges_inbox_rows_older_than_the_retention(database, signing_key, tmp_path):
    url, schema = database
    settings = Settings(
        database_url=url,
        db_schema=schema,
        jwt_public_key=signing_key[1],
        data_dir=tmp_path,
        inbox_retention_days=3,
        inbox_purge_interval_seconds=0.05,
    )
    bus = MemoryBus(consumers={"activity"})
    app = create_app(settings, bus=bus)
    try:
        async with running(app):
            db = app.state.runtime.db
            old, young = uuid.uuid4(), uuid.uuid4()
            async with db.transaction() as s:
                for event_id, age in ((old, timedelta(days=3, minutes=1)), (young, timedelta(days=2))):
                    await s.execute(
                        sa.insert(inbox).values(
                            consumer="activity",
                            event_id=event_id,
                            event_type="crm.customer.created",
                            processed_at=datetime.now(UTC) - age,
                        )
                    )

            async def kept():
                async with db.transaction(read_only=True) as s:
                    ids = set((await s.execute(sa.select(inbox.c.event_id))).scalars())
                return ids if old not in ids else None

            assert await eventually(kept, timeout=10) == {young}
    finally:
        await bus.close()
