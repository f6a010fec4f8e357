"""One Alembic tree per service, run the same way by every service.

Each service's `migrations/env.py` calls `run_env(metadata)`. Programmatic upgrades pass the live
connection in `config.attributes`; on Postgres they hold an advisory lock, so several instances
starting at once migrate one after the other.
"""

import zlib
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, text

from crm_common import changes, customer_refs, directory, idempotency
from crm_common.db import Database, ensure_schema
from crm_common.events import dead_letters
from crm_common.events import tables as event_tables


def run_env(
    metadata: MetaData,
    *,
    with_directory: bool = True,
    with_customer_refs: bool = False,
    with_tombstones: bool = False,
) -> None:
    """Body of a service's env.py. The outbox/inbox (and, in services, the user directory) tables
    come from crm_common; listing them keeps autogenerate from proposing to drop them. Services (which
    consume events) also have the dead-letter table."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `crm migrate <service>`, which supplies the connection")
    schema = context.config.attributes.get("schema")
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=[
            metadata,
            event_tables.metadata,
            idempotency.metadata,
            *([directory.metadata, dead_letters.metadata] if with_directory else []),
            *([customer_refs.metadata] if with_customer_refs else []),
            *([changes.metadata] if with_tombstones else []),
        ],
        render_as_batch=sqlite,
        version_table_schema=None if sqlite else schema,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _config(connection: Connection, script_location: Path, schema: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def _upgrade(connection: Connection, script_location: Path, schema: str, revision: str) -> None:
    command.upgrade(_config(connection, script_location, schema), revision)


async def migrate(db: Database, script_location: Path, revision: str = "head") -> None:
    await ensure_schema(db.engine, db.schema)
    async with db.engine.begin() as conn:
        if not db.is_sqlite:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(db.schema.encode())}
            )
        await conn.run_sync(_upgrade, script_location, db.schema, revision)


def _downgrade(connection: Connection, script_location: Path, schema: str, revision: str) -> None:
    command.downgrade(_config(connection, script_location, schema), revision)


async def downgrade(db: Database, script_location: Path, revision: str) -> None:
    """Back to `revision` (tests of data migrations: downgrade, then migrate again)."""
    async with db.engine.begin() as conn:
        await conn.run_sync(_downgrade, script_location, db.schema, revision)


def _revision(connection: Connection, script_location: Path, schema: str, message: str) -> None:
    command.revision(_config(connection, script_location, schema), message=message, autogenerate=True)


async def make_revision(db: Database, script_location: Path, message: str) -> None:
    """Autogenerate a revision by comparing the models with a database migrated to head."""
    await migrate(db, script_location)
    async with db.engine.begin() as conn:
        await conn.run_sync(_revision, script_location, db.schema, message)
