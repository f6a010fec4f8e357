"""Pytest plugin shared by every test suite: real databases, a real broker, tokens and app clients.

Postgres, RabbitMQ and Redis are found from CRM_TEST_DATABASE_URL / CRM_TEST_AMQP_URL /
CRM_TEST_REDIS_URL, else the local defaults, else testcontainers when a Docker engine answers; otherwise the tests that need them
skip with the reason, and with CRM_REQUIRE_SERVICES=1 (CI) that skip is a failure.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlparse

import httpx
import jwt
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from crm_common.auth import ALGORITHM, DATA_CONTEXTS, new_keypair, permissions_for
from crm_common.db import async_url

T = TypeVar("T")

# The apps tests build in process wait this long for a customer lookup (5 s in the product): on CI's
# busiest minutes an in-process lookup twice missed 5 s, while the tests of the time-out itself set
# their own (test_customer_lookup_timeout.py). A test process of the suite's own sees it; the e2e
# tests' servers get a newcomer's environment without it.
os.environ.setdefault("CRM_CUSTOMER_LOOKUP_TIMEOUT_SECONDS", "30")

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


def _unavailable(what: str) -> NoReturn:
    reason = f"{what} is not reachable (set CRM_TEST_{what.upper()}_URL, run it locally, or start Docker)"
    if os.environ.get("CRM_REQUIRE_SERVICES") == "1":
        pytest.fail(f"CRM_REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A Postgres server URL (sync form, e.g. postgresql://postgres@127.0.0.1:5432/postgres)."""
    url = os.environ.get("CRM_TEST_DATABASE_URL", DEFAULT_PG)
    if _reachable(url, 5432):
        return url
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None)
        container.start()
        return container.get_connection_url()
    _unavailable("database")


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("CRM_TEST_AMQP_URL", DEFAULT_AMQP)
    if _reachable(url, 5672):
        return url
    if _docker_answers():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-management-alpine")
        container.start()
        params = container.get_connection_params()
        return f"amqp://guest:guest@{params.host}:{params.port}/"
    _unavailable("amqp")


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("CRM_TEST_REDIS_URL", DEFAULT_REDIS)
    if _reachable(url, 6379):
        return url
    if _docker_answers():
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine")
        container.start()
        return f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
    _unavailable("redis")


@pytest.fixture
async def pg_schema(postgres_url: str) -> AsyncIterator[str]:
    """A fresh, uniquely named schema, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    engine = create_async_engine(async_url(postgres_url))
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(database_url, schema) for each backend: tests using it run on SQLite and on Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}", "main"
    return request.getfixturevalue("postgres_url"), request.getfixturevalue("pg_schema")


@pytest.fixture
def events_namespace() -> str:
    """A unique exchange/queue name prefix so tests never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:10]}."


# --- tokens -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def signing_key() -> tuple[str, str]:
    return new_keypair()


@pytest.fixture(scope="session")
def make_token(signing_key: tuple[str, str]) -> Callable[..., str]:
    """make_token(roles=["admin"], user_id=..., expires_in=900, **claims) -> bearer token."""

    def make(
        roles: Sequence[str] = ("admin",),
        *,
        user_id: uuid.UUID | None = None,
        expires_in: int = 900,
        **claims: Any,
    ) -> str:
        now = datetime.now(UTC)
        body = {
            "sub": str(user_id or uuid.uuid4()),
            "email": "tester@example.com",
            "name": "Tester",
            "roles": list(roles),
            "perms": sorted(permissions_for(list(roles))),
            "iss": "crm-gateway",
            "aud": "crm",
            "iat": now,
            "exp": now + timedelta(seconds=expires_in),
            **claims,
        }
        return jwt.encode(body, signing_key[0], algorithm=ALGORITHM)

    return make


# Every record of every context in scope: what the tests of an operation's behaviour act with.
ALL_RECORDS = {context: ["all", "all"] for context in DATA_CONTEXTS}


@pytest.fixture(scope="session")
def auth_headers(make_token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """auth_headers(*roles, user_id=..., **claims): a bearer header with the roles' permissions and,
    unless `scp` is given, every record in scope (tests of what an operation does). Record scope
    tests sign with the roles' own scopes: make_token without `scp`, or `scp=` here."""

    def headers(*roles: str, **kwargs: Any) -> dict[str, str]:
        kwargs.setdefault("scp", ALL_RECORDS)
        return {"Authorization": f"Bearer {make_token(roles or ('admin',), **kwargs)}"}

    return headers


# --- app clients ----------------------------------------------------------------------------------


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (migrations, relay, consumers) and give an HTTP client to it."""
    async with app.router.lifespan_context(app):
        runtime = getattr(app.state, "runtime", None)
        if runtime is not None:
            await asyncio.wait_for(runtime.bus_connected.wait(), 10)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def admitted(send: Callable[[], Awaitable[httpx.Response]], *, attempts: int = 30) -> httpx.Response:
    """`await send()` again while the answer is 503 OVERLOADED, after its Retry-After, as a client
    honouring the header does: tests of bursts assert what such a client ends up with, whatever the
    load on the machine running them."""
    for _ in range(attempts - 1):
        response = await send()
        if response.status_code != 503 or response.json().get("code") != "OVERLOADED":
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    return await send()


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Await `check()` until it returns a truthy value; the last value (or error) if time runs out."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


# --- a service's own tables and consumer, as its tests look at them ------------------------------
# `client` is a service app's test client (`running(create_app(...))`): its runtime's database is
# the service's own. Every service's tests use these, not copies.


async def count_rows(client: httpx.AsyncClient, table: Any) -> int:
    """Rows in one of the service's tables (a model or `sa.Table`)."""
    async with _runtime(client).db.transaction(read_only=True) as s:
        count: int = (await s.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
        return count


async def outbox_payloads(client: httpx.AsyncClient, routing_key: str | None = None) -> list[dict[str, Any]]:
    """The events the service has written to its outbox (envelopes), oldest first; of one routing
    key when given."""
    from crm_common.events.tables import outbox

    query = sa.select(outbox.c.payload).order_by(outbox.c.position)
    if routing_key:
        query = query.where(outbox.c.routing_key == routing_key)
    async with _runtime(client).db.transaction(read_only=True) as s:
        return list((await s.execute(query)).scalars())


async def deliver(
    client: httpx.AsyncClient,
    consumer: str,
    handlers: Mapping[str, Any],
    *events: Any,
    concurrently: bool = False,
) -> None:
    """Hand events to the service exactly as its bus consumer `consumer` does: through the inbox,
    one transaction each, to `handlers` and the directory's (user.*, team.*). Straight to the
    handlers, not through the bus: on a shared MemoryBus every other service's queue is declared
    too, with nobody consuming in a service's tests, so a publish would wait for them."""
    from crm_common import directory
    from crm_common.events.inbox import idempotent_dispatcher

    dispatch = idempotent_dispatcher(_runtime(client).db, consumer, {**directory.HANDLERS, **handlers})
    if concurrently:
        await asyncio.gather(*(dispatch(e) for e in events))
    else:
        for event in events:
            await dispatch(event)


def user_event(
    user_id: uuid.UUID | None = None,
    *,
    name: str = "Grace Hopper",
    roles: Sequence[str] = ("sales_rep",),
    active: bool = True,
    version: int = 1,
    **extra: Any,
) -> Any:
    """The gateway's `user.created` (version 1) or `user.updated` event for a user, as every
    service's directory hears it; `extra` sets the contract's other fields (`time_zone=...`)."""
    from crm_common.contracts.identity import UserCreated, UserUpdated
    from crm_common.events.envelope import event_from

    user_id = user_id or uuid.uuid4()
    payload = (UserCreated if version == 1 else UserUpdated)(
        user_id=user_id,
        email=f"{user_id.hex[:8]}@crm.example",
        full_name=name,
        roles=list(roles),
        is_active=active,
        **extra,
    )
    return event_from(payload, service="gateway", subject=user_id, sequence=version)


def team_event(
    team_id: uuid.UUID | None = None,
    *,
    name: str = "EMEA",
    type: str = "SALES",
    active: bool = True,
    **extra: Any,
) -> Any:
    """The gateway's `team.created` event for a team; `extra` sets the contract's other fields
    (`manager_id=...`, `member_ids=[...]`)."""
    from crm_common.contracts.identity import TeamCreated
    from crm_common.events.envelope import event_from

    team_id = team_id or uuid.uuid4()
    payload = TeamCreated(team_id=team_id, name=name, type=type, is_active=active, **extra)
    return event_from(payload, service="gateway", subject=team_id, sequence=1)


def customer_created_event(
    customer_id: uuid.UUID | None = None,
    *,
    name: str = "Acme Ltd",
    number: str | None = None,
    type: str = "COMPANY",
    status: str = "CUSTOMER",
    email: str | None = None,
    sequence: int = 1,
    **extra: Any,
) -> Any:
    """customer-svc's `customer.created` event for a customer, as every other context hears it;
    `extra` sets the contract's other fields (`owner=CustomerOwner(...)`, `source_campaign_id=...`)."""
    from crm_common.contracts.customer import CustomerCreated
    from crm_common.events.envelope import event_from

    customer_id = customer_id or uuid.uuid4()
    payload = CustomerCreated(
        customer_id=customer_id,
        customer_number=number or f"CUST-2026-{customer_id.int % 10**6:06d}",
        type=type,
        full_name=name,
        email=email or f"{customer_id.hex[:8]}@example.com",
        status=status,
        **extra,
    )
    return event_from(payload, service="customer", subject=customer_id, sequence=sequence)


async def publish(bus: Any, *events: Any) -> None:
    """Publish events on a test's MemoryBus and return once every one was handled by its consumers."""
    results = await bus.publish(list(events), timeout=10)
    assert results == [None] * len(events), results


def _runtime(client: httpx.AsyncClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]
