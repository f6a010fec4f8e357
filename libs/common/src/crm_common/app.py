"""What every service app has: database, bus, outbox relay, event consumer, auth, problem
responses, request ids, health and metrics. A service's `create_app` passes its own routers,
migrations and event handlers."""

import asyncio
import functools
import gc
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp

from crm_common import archive, consistency, customer_lookup, directory, idempotency, planner_statistics
from crm_common.admission import AdmissionMiddleware, install_admission
from crm_common.auth import SessionGuard, SessionState, TokenVerifier
from crm_common.db import Database
from crm_common.errors import install_problem_handlers
from crm_common.events import admin_api as event_admin_api
from crm_common.events import dead_letters
from crm_common.events.bus import Bus
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.envelope import CloudEvent
from crm_common.events.inbox import EventHandler, idempotent_dispatcher, keep_retention
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.rabbitmq_bus import RabbitBus
from crm_common.events.relay import OutboxRelay, backoff
from crm_common.input_guard import RefuseNulInQuery, RefuseNullBody
from crm_common.methods import MethodCheck
from crm_common.metrics import runtime_metrics
from crm_common.migrations import migrate
from crm_common.observability import RequestContextMiddleware, health_router, install_observability
from crm_common.settings import ServiceSettings

log = logging.getLogger("crm.app")
# Whether an event can have any effect in this service (crm_common.events.inbox: `wanted`).
EventFilter = Callable[[Database, CloudEvent], Awaitable[bool]]


@dataclass
class Runtime:
    settings: ServiceSettings
    db: Database
    bus: Bus
    # None in a serving worker (`settings.background_work` off): another process relays.
    relay: OutboxRelay | None
    bus_connected: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    relay_task: asyncio.Task[None] | None = None

    async def drain_outbox(self, timeout: float | None = None) -> int:
        """At a graceful stop: stop the relay's loop, then publish what is due for at most `timeout`
        seconds (the settings' `outbox_drain_seconds` when not given); 0 if the bus never connected:
        nothing could be sent."""
        if self.relay is None or self.relay_task is None or not self.bus_connected.is_set():
            return 0
        self.relay_task.cancel()
        await asyncio.gather(self.relay_task, return_exceptions=True)
        return await self.relay.drain(self.settings.outbox_drain_seconds if timeout is None else timeout)


def make_bus(settings: ServiceSettings) -> Bus:
    if settings.amqp_url:
        return RabbitBus(
            settings.amqp_url,
            namespace=settings.events_namespace,
            delivery_limit=settings.event_delivery_limit,
            prefetch=settings.event_prefetch,
            batch_size=settings.event_batch_size,
            connection_name=f"crm-{settings.service_name}",
        )
    # A lone service without a broker: only its own queue lives here. Declaring the other services'
    # queues would make every publish wait for consumers that are not in this process, forever.
    return MemoryBus(
        delivery_limit=settings.event_delivery_limit,
        consumers={settings.service_name},
        batch_size=settings.event_batch_size,
    )


async def _connect_bus(
    runtime: Runtime,
    relay: OutboxRelay,
    handlers: Mapping[str, EventHandler],
    owned: bool,
    event_wanted: EventFilter | None,
) -> None:
    """Start the bus, declare the platform's queues and start consuming; retried while the broker is
    away, so a service starts (and takes writes into its outbox) without it."""
    settings, bus = runtime.settings, runtime.bus
    attempt = 0
    while True:
        try:
            if owned:
                await bus.start()
            for consumer, keys in SUBSCRIPTIONS.items():
                await bus.declare(consumer, keys)
            if handlers:
                keys = SUBSCRIPTIONS.get(settings.service_name, ())
                missing = set(handlers) - set(keys)
                if missing:
                    raise RuntimeError(
                        f"handlers for {sorted(missing)} are not in the subscription catalogue"
                    )
                wanted = functools.partial(event_wanted, runtime.db) if event_wanted else None
                dispatch = idempotent_dispatcher(runtime.db, settings.service_name, handlers, wanted)
                sink = dead_letters.recorder(runtime.db, settings.service_name)
                await bus.consume(settings.service_name, keys, dispatch, dead_letter=sink)
            runtime.bus_connected.set()
            # The relay starts once there is a broker to publish to.
            runtime.relay_task = asyncio.create_task(relay.run())
            runtime.tasks.append(runtime.relay_task)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            attempt += 1
            log.warning("%s: broker not reachable yet (%s); retrying", settings.service_name, exc)
            if owned:
                await bus.close()
            await asyncio.sleep(backoff(attempt, cap=5))


def _request_context_and_method_check_first(app: FastAPI, *, admission_first: bool = False) -> None:
    """Services add middleware of their own after this (idempotency); whatever they add, the request
    id is taken first (so every problem carries it) and an undeclared method is a 405 before any
    other middleware reads the body or its headers (an `Idempotency-Key` on a PUT to a POST-only
    path was checked, and refused, as a key).

    `admission_first` (the gateway, whose refusals are most of what it answers under overload): a
    refusal is answered right after the request id and the headers every response carries (classes
    marked `every_response`), before the method check matches the path against every route, the
    body is read, or the request is authenticated."""
    build = app.build_middleware_stack

    def build_in_order() -> ASGIApp:
        first: tuple[Any, ...] = (RequestContextMiddleware, MethodCheck, RefuseNulInQuery, RefuseNullBody)
        if admission_first:
            every_response = tuple(
                m.cls for m in app.user_middleware if getattr(m.cls, "every_response", False)
            )
            first = (RequestContextMiddleware, *every_response, AdmissionMiddleware, *first[1:])
        app.user_middleware = sorted(
            app.user_middleware, key=lambda m: first.index(m.cls) if m.cls in first else len(first)
        )
        return build()

    app.build_middleware_stack = build_in_order  # type: ignore[method-assign]  # on purpose: order first


def settle_heap() -> None:
    """For a server process once its app is built (`crm up`, `crm serve`): moves what it has built
    (modules, routes, models, schemas: ~190k objects in the gateway) out of the cyclic garbage
    collector's sight (gc.freeze), after collecting the start-up's garbage. A full collection walks
    every tracked object: 140 ms of CPU in the gateway and 0.5-1.7 s of wall time on a busy machine,
    every few dozen console pages, which were the kanban's p99; it now walks only what came after
    (5-9 ms). Not for tests, which build many apps in one process: a frozen cycle is never freed."""
    gc.collect()
    gc.freeze()


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent (scope="function"), so a
    failed commit is an error response, never a success that did not happen. A request holding an
    Idempotency-Key hands its transaction to the idempotency middleware, which commits it together
    with the response it stores for the key (crm_common.idempotency)."""
    db = request.app.state.runtime.db
    read_only = request.method in ("GET", "HEAD")
    claim = None if read_only else idempotency.claim_for(db)
    if claim is not None:
        async with claim.transaction() as session:
            yield session
        return
    # A GET's statements need no transaction around them (Database.reads: on Postgres no BEGIN and
    # COMMIT round trips; each statement sees what was committed when it started, as it did inside
    # a READ COMMITTED transaction). A GET that needs one takes ReadTransactionDep.
    async with db.reads() if read_only else db.transaction() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(db_session, scope="function")]


async def db_read_transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """A GET whose statements must share one transaction (`SET LOCAL`, a server-side cursor)."""
    async with request.app.state.runtime.db.transaction(read_only=True) as session:
        yield session


ReadTransactionDep = Annotated[AsyncSession, Depends(db_read_transaction, scope="function")]


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    migrations: Path,
    handlers: Mapping[str, EventHandler] | None = None,
    bus: Bus | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
    on_shutdown: Callable[[Runtime], Awaitable[None]] | None = None,
    background: Callable[[Runtime], Awaitable[None]] | None = None,
    event_wanted: EventFilter | None = None,
    document_event_admin: bool = False,
    admission_upstream_of: Callable[[str], str | None] | None = None,
    purge_archived: Callable[[Database, timedelta], Awaitable[int]] | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """`bus` is passed in when several services share one in-process bus (the embedded default).
    `on_startup` runs once the database is migrated, before the app takes requests; `background` then
    starts the service's own periodic work, only in a process that does background work
    (`settings.background_work`: not in `crm up --workers N`'s serving workers). `event_wanted`
    lets a consumer skip the handler's transaction for events that can have no effect here. Services (not the
    gateway, which is its source) keep the user and team directory from the gateway's events.
    `document_event_admin`: list the admin endpoints over dead letters and the outbox
    (crm_common.events.admin_api) in this app's OpenAPI (the gateway's). `admission_upstream_of`: the
    gateway's routing, for admission budgets per service it passes requests on to
    (crm_common.admission). `purge_archived(db, retention)`
    deletes the service's records archived longer than the retention (crm_common.archive): run at start
    and every `archive_purge_interval_seconds`."""
    handlers = dict(handlers or {})
    if settings.service_name in SUBSCRIPTIONS:
        handlers = {**directory.HANDLERS, **handlers}

    async def working(db: Database, the_bus: Bus, owned: bool) -> Runtime:
        """The runtime of a process that does the service's background work: the relay of its
        outbox, its consumer and its periodic jobs."""
        if db.is_sqlite:
            # The embedded default: this process is the only one on the file (`crm up --workers`
            # starts its serving workers after this), so a key still in flight was left by one that
            # died, whose transaction never committed.
            released = await idempotency.release_abandoned(db)
            if released:
                log.info("%s: released %d idempotency keys left in flight", settings.service_name, released)
        relay = OutboxRelay(
            db,
            the_bus,
            service=settings.service_name,
            batch_size=settings.relay_batch_size,
            poll_interval=settings.relay_poll_interval,
            publish_timeout=settings.relay_publish_timeout,
            retention=timedelta(hours=settings.outbox_retention_hours),
        )
        runtime = Runtime(settings=settings, db=db, bus=the_bus, relay=relay)
        db.outbox_listeners.append(relay.wake)
        runtime.tasks.append(asyncio.create_task(_connect_bus(runtime, relay, handlers, owned, event_wanted)))
        if handlers:
            runtime.tasks.append(
                asyncio.create_task(
                    keep_retention(
                        db,
                        settings.service_name,
                        timedelta(days=settings.inbox_retention_days),
                        settings.inbox_purge_interval_seconds,
                    )
                )
            )
        if purge_archived is not None:
            retention = timedelta(days=settings.archive_retention_days)
            runtime.tasks.append(
                asyncio.create_task(
                    archive.keep_purging(
                        settings.service_name,
                        functools.partial(purge_archived, db, retention),
                        settings.archive_purge_interval_seconds,
                    )
                )
            )
        if db.is_sqlite:
            runtime.tasks.append(
                asyncio.create_task(
                    planner_statistics.keep_fresh(
                        settings.service_name, db, settings.sqlite_analyze_interval_seconds
                    )
                )
            )
        return runtime

    def serving(app: FastAPI, db: Database, the_bus: Bus) -> Runtime:
        """A serving worker of `crm up --workers N`: the main process migrated, relays this outbox,
        consumes and runs the periodic jobs; this one serves requests and tells it when the outbox
        grew (`app.state.wake_relay`)."""
        runtime = Runtime(settings=settings, db=db, bus=the_bus, relay=None)
        runtime.bus_connected.set()
        if (wake := getattr(app.state, "wake_relay", None)) is not None:
            db.outbox_listeners.append(wake)
        return runtime

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(
            settings.resolved_database_url(),
            schema=settings.schema_name,
            pool_size=settings.db_pool_size,
            numbering_lock_timeout=settings.numbering_lock_timeout_seconds,
            writers_elsewhere=settings.workers > 0,
        )
        if settings.migrate_on_start:
            await migrate(db, migrations)
        owned = bus is None
        the_bus = bus if bus is not None else make_bus(settings)
        if settings.background_work:
            runtime = await working(db, the_bus, owned)
        else:
            runtime = serving(app, db, the_bus)
        app.state.runtime = runtime
        try:
            if on_startup is not None:
                await on_startup(runtime)
            if background is not None and settings.background_work:
                await background(runtime)
            yield
        finally:
            if owned:
                # Its own broker connection (distributed mode): send what is due before closing.
                # In the embedded default the process drains every service first (crm_gateway.embedded),
                # while all consumers still run.
                await runtime.drain_outbox()
            if on_shutdown is not None:
                await on_shutdown(runtime)
            tasks = list(runtime.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if owned:
                await the_bus.close()
            if getattr(app.state, "customer_lookup", None) is not None:
                await app.state.customer_lookup.close()
            await db.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        **fastapi_options,
    )
    app.state.settings = settings
    # What `crm events dlq replay` runs a dead letter through (with the inbox, as the consumer does).
    app.state.event_handlers = handlers
    app.state.token_verifier = TokenVerifier(
        settings.public_key_pem, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    if settings.service_name in SUBSCRIPTIONS:
        # Tokens of users deactivated, demoted or re-passworded since are refused, from the directory.
        async def session_state(user_id: uuid.UUID) -> SessionState | None:
            try:
                async with app.state.runtime.db.reads() as session:
                    return await directory.session_state(session, user_id)
            except Exception:
                # The directory cannot be read (database away, schema behind): the request's own
                # queries decide; refusing every caller here would add nothing but an outage.
                log.warning("%s: the user directory could not be read", settings.service_name, exc_info=True)
                return None

        app.state.session_guard = SessionGuard(session_state)
    install_problem_handlers(app)
    if "customer.created" in SUBSCRIPTIONS.get(settings.service_name, ()):
        customer_lookup.install(app, settings)  # it references customers: crm_common.customer_refs
    app.add_middleware(MethodCheck)
    app.add_middleware(RefuseNulInQuery)
    app.add_middleware(RefuseNullBody)
    install_admission(app, settings, admission_upstream_of)
    # Outside admission: a request waiting for its events holds no slot meanwhile.
    consistency.install(app, settings, handlers)
    install_observability(app, settings.service_name)
    _request_context_and_method_check_first(app, admission_first=admission_upstream_of is not None)

    async def ready_checks() -> dict[str, bool]:
        runtime: Runtime = app.state.runtime
        return {
            "database": await runtime.db.ping(),
            "broker": runtime.bus_connected.is_set() and await runtime.bus.is_ready(),
        }

    async def refresh_metrics() -> None:
        await runtime_metrics(app.state.runtime, settings.service_name, consumer=bool(handlers))

    app.include_router(
        health_router(
            ready_checks,
            service=settings.service_name,
            refresh_metrics=refresh_metrics,
            metrics_token=settings.metrics_token,
        )
    )
    for router in routers:
        app.include_router(router)
    # Every process serves them for itself; the gateway, which routes them, documents them once.
    app.include_router(event_admin_api.router(), include_in_schema=document_event_admin)
    return app
