"""`unique_violation` names the unique index or constraint a write ran into, on SQLite and Postgres
alike, so services compare names instead of searching error text."""

import uuid

import pytest
import sqlalchemy as sa
from crm_common.db import Database, ensure_schema
from crm_common.errors import unique_violation
from sqlalchemy.exc import IntegrityError

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("external_id", sa.String(50)),
    sa.Column("a", sa.Integer),
    sa.Column("b", sa.Integer),
    sa.Index("uq_things_name_lower", sa.func.lower(sa.text("name")), unique=True),
    sa.Index("uq_things_external_id", "external_id", unique=True),
    sa.Column("positive", sa.Integer, sa.CheckConstraint("positive > 0", name="ck_things_positive")),
)


@pytest.fixture
async def db(database):
    url, schema = database
    db = Database(url, schema=schema)
    await ensure_schema(db.engine, schema)
    async with db.engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield db
    await db.dispose()


async def violation(db: Database, **values) -> IntegrityError:
    async with db.transaction() as session:
        await session.execute(sa.insert(things).values(id=uuid.uuid4(), name="first", external_id="x-1"))
    with pytest.raises(IntegrityError) as caught:
        async with db.transaction() as session:
            await session.execute(sa.insert(things).values(**{"id": uuid.uuid4(), "name": "other", **values}))
    return caught.value


async def test_an_index_over_an_expression_is_named(db):
    assert unique_violation(await violation(db, name="FIRST")) == "uq_things_name_lower"


async def test_an_index_over_a_column_is_named(db):
    assert unique_violation(await violation(db, external_id="x-1")) == "uq_things_external_id"


async def test_another_integrity_error_is_not_a_unique_violation(db):
    assert unique_violation(await violation(db, positive=-1)) is None
    assert unique_violation(ValueError("UNIQUE constraint failed: index 'uq_x'")) is None
