import pytest
import sqlalchemy as sa
from crm_common.db import Database, ensure_schema
from crm_common.events import tables

# A stand-in for a service's own table, so tests can see a handler's effects.
effects_metadata = sa.MetaData()
effects_table = sa.Table(
    "effects",
    effects_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Uuid, nullable=False),
)


@pytest.fixture
def effects() -> sa.Table:
    return effects_table


@pytest.fixture
async def db(database) -> Database:
    """A database (SQLite and Postgres) with the outbox, inbox and `effects` tables."""
    url, schema = database
    db = Database(url, schema=schema)
    await ensure_schema(db.engine, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(tables.metadata.create_all)
        await conn.run_sync(effects_metadata.create_all)
    yield db
    await db.dispose()
