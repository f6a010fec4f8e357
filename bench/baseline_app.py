"""The benchmark's baseline: a bare FastAPI app with one endpoint doing one INSERT and one doing one
SELECT by primary key.

`GET /customers/{id}` reads one row by primary key (404 when there is none) and answers it.
`POST /customers` takes the same JSON body the CRM's create takes, inserts one row shaped like a
customer (uuid id, names, email under a unique lower(email) index, status, JSON tags/custom fields,
timestamps) in one transaction, and answers 201 with the row. No auth, no outbox, no events, no
gateway hop: it is what one insert per request costs on the same stack (FastAPI + uvicorn +
SQLAlchemy Core + the mode's driver).

The engine is configured like crm_common.db (repeated here on purpose, so the baseline does not move
when that code changes):
  sqlite    aiosqlite, WAL, synchronous=NORMAL, busy_timeout, BEGIN IMMEDIATE per writing transaction
  postgres  asyncpg, pool_size=10 + max_overflow=10 (the services' default pool)

Run: python bench/baseline_app.py --database-url sqlite:///path/baseline.db --port 8100
"""

import argparse
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, EmailStr
from pydantic.alias_generators import to_camel
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = sa.MetaData()
customers = sa.Table(
    "baseline_customers",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("first_name", sa.String(100)),
    sa.Column("last_name", sa.String(100)),
    sa.Column("full_name", sa.String(300), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("custom_fields", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Index("uq_baseline_customers_email_lower", sa.func.lower(sa.text("email")), unique=True),
)


class CustomerIn(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    first_name: str | None = None
    last_name: str | None = None
    email: EmailStr


class CustomerOut(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: uuid.UUID
    full_name: str
    email: str
    status: str
    created_at: datetime
    version: int


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        return create_async_engine(parsed, pool_size=10, max_overflow=10)
    if parsed.drivername != "sqlite":
        raise SystemExit(f"unsupported database URL {url!r}: sqlite:///... or postgresql://...")
    engine = create_async_engine(parsed.set(drivername="sqlite+aiosqlite"), connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):
        # Reads take no write lock (WAL lets them run beside a writer), as in crm_common.db.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("read_only") else "BEGIN IMMEDIATE")

    return engine


def create_app(database_url: str) -> FastAPI:
    engine = make_engine(database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(title="bench baseline", lifespan=lifespan, openapi_url=None, docs_url=None)

    @app.get("/readyz")
    async def readyz() -> dict:
        return {"status": "ok"}

    @app.get("/customers/{customer_id}", response_model_by_alias=True)
    async def read(customer_id: uuid.UUID) -> CustomerOut:
        async with engine.connect() as conn:
            await conn.execution_options(read_only=True)
            row = (await conn.execute(customers.select().where(customers.c.id == customer_id))).first()
        if row is None:
            raise HTTPException(404)
        return CustomerOut(**row._mapping)

    @app.post("/customers", status_code=201, response_model_by_alias=True)
    async def create(body: CustomerIn) -> CustomerOut:
        now = datetime.now(UTC)
        row = {
            "id": uuid.uuid4(),
            "type": "INDIVIDUAL",
            "first_name": body.first_name,
            "last_name": body.last_name,
            "full_name": " ".join(p for p in (body.first_name, body.last_name) if p),
            "email": body.email,
            "status": "LEAD",
            "priority": "MEDIUM",
            "tags": [],
            "custom_fields": {},
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        async with engine.begin() as conn:
            await conn.execute(customers.insert().values(**row))
        return CustomerOut(**row)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same uvicorn settings `crm up` / `crm serve` use.
    uvicorn.run(
        create_app(args.database_url), host=args.host, port=args.port, log_config=None, access_log=False
    )


if __name__ == "__main__":
    main()
