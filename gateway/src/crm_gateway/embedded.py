"""The embedded default: every service and the gateway in one process, one SQLite file per service,
events on the in-process bus through the same outbox and inbox tables."""

import asyncio
import importlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from crm_common.customer_lookup import CustomerLookup
from crm_common.events.memory_bus import MemoryBus
from crm_common.settings import ServiceSettings
from fastapi import FastAPI

from crm_gateway import runfile
from crm_gateway.app import create_app as gateway_app
from crm_gateway.settings import SERVICES, GatewaySettings
from crm_gateway.workers import DELIVERIES, MainProcessLink, ServingWorkers

log = logging.getLogger("crm.embedded")

# The one process's queue target when none is configured: every service, the gateway and the event
# consumers share one event loop and two cores' worth of CPU, so a request that waited its turn then
# also runs slower than in the distributed mode. At 4x overload (bench/overload.py, idle machine) the
# distributed default of 0.25 s gave a served p99 of 1.05-1.13 s here; 0.1 s gave 0.57-0.59 s with
# served/s still 107% of 1x and refusals under 20 ms.
EMBEDDED_TARGET_WAIT_SECONDS = 0.1
_TARGET_WAIT = "admission_target_wait_seconds"
# A serving worker's settings: the main process migrated and does the background work.
_SERVING_ONLY = {"background_work": False, "migrate_on_start": False}


def _service_factory(name: str) -> tuple[Callable[..., FastAPI], type[ServiceSettings]]:
    """Imported on use, so a process (or a test) running some services needs only those."""
    app_module = importlib.import_module(f"{name}_svc.app")
    settings_module = importlib.import_module(f"{name}_svc.settings")
    create: Callable[..., FastAPI] = app_module.create_app
    settings: type[ServiceSettings] = settings_module.Settings
    return create, settings


def create_embedded_app(
    settings: GatewaySettings | None = None,
    *,
    only: tuple[str, ...] | None = None,
    workers: ServingWorkers | None = None,
    link: MainProcessLink | None = None,
) -> FastAPI:
    """`only`: run just these services in the process (tests); the others answer 404. `workers`: this
    is the main process of `crm up --workers N`, which starts them once it has started. `link`:
    this is one of those serving workers (crm_gateway.workers)."""
    settings = settings or GatewaySettings()
    if _TARGET_WAIT not in settings.model_fields_set:
        settings = settings.model_copy(update={_TARGET_WAIT: EMBEDDED_TARGET_WAIT_SECONDS})
    if link is not None:
        settings = settings.model_copy(update=_SERVING_ONLY)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bus = MemoryBus(
        delivery_limit=settings.event_delivery_limit,
        consumers=set(only) if only else None,
        batch_size=settings.event_batch_size,
    )
    # The services' credential for each other's internal endpoints: in process, a fresh one per start.
    service_token = settings.service_token or secrets.token_urlsafe(32)
    services = {
        name: _build(name, settings, bus, service_token, link)
        for name in SERVICES
        if only is None or name in only
    }
    if "customer" in services:
        # A context meeting a customer it has not heard of asks customer-svc, in process.
        for app in services.values():
            if getattr(app.state, "customer_lookup", False) is None:
                app.state.customer_lookup = CustomerLookup.local(
                    services["customer"],
                    token=service_token,
                    timeout=settings.customer_lookup_timeout_seconds,
                )
    if "campaign" in services and "customer" in services:
        # Segments are evaluated by customer-svc in this same process: called directly, not through
        # a port this process may not be listening on (in-process tests, a CRM_PORT set elsewhere).
        services["campaign"].state.customer_transport = httpx.ASGITransport(app=services["customer"])
    gateway = gateway_app(settings, local_services=services, bus=bus)
    if link is not None:
        gateway.state.wake_relay = link.waker("gateway")

    # Mounted apps get no lifespan of their own: the gateway's runs theirs, and closes the bus last.
    gateway_lifespan = gateway.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(bus.close)
            await stack.enter_async_context(gateway_lifespan(app))
            for service_app in services.values():
                await stack.enter_async_context(service_app.router.lifespan_context(service_app))
            if link is not None:
                yield
                return
            runfile.write(settings.data_dir)
            if workers is not None:
                apps = {"gateway": gateway, **services}
                wakers = {name: a.state.runtime.db.outbox_grew for name, a in apps.items()}
                if "webhook" in services:
                    wakers[DELIVERIES] = services["webhook"].state.webhook_worker.wake
                await workers.start(wakers)
            yield
            if workers is not None:
                await workers.stop()
            await drain_outboxes([gateway, *services.values()], settings.outbox_drain_seconds)
        runfile.remove_if_ours(settings.data_dir)
        # Said here rather than after uvicorn returns: uvicorn re-raises the stopping signal.
        log.info("CRM stopped: every service closed its database and the event bus")

    gateway.router.lifespan_context = lifespan
    gateway.state.services = services
    return gateway


async def drain_outboxes(apps: Iterable[FastAPI], timeout: float) -> None:
    """A graceful stop sends what every outbox holds, for at most `timeout` seconds in all, while every
    consumer still runs; rounds repeat while handlers write new events (a reaction to an event)."""
    runtimes = [app.state.runtime for app in apps if getattr(app.state, "runtime", None) is not None]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    sent = 0
    while (left := deadline - loop.time()) > 0:
        handled = await asyncio.gather(*(r.drain_outbox(left) for r in runtimes))
        sent += sum(handled)
        if not any(handled):
            break
    if sent:
        log.info("outbox drained at stop: %d event(s) sent", sent)


def _build(
    name: str, settings: GatewaySettings, bus: MemoryBus, service_token: str, link: MainProcessLink | None
) -> FastAPI:
    create, settings_cls = _service_factory(name)
    service_settings = settings_cls(
        data_dir=settings.data_dir,
        jwt_public_key_file=settings.public_key_path(),
        service_token=service_token,
        # In process: never the distributed URL some environment variable may carry.
        customer_url=None,
    )
    if _TARGET_WAIT not in service_settings.model_fields_set:
        service_settings = service_settings.model_copy(update={_TARGET_WAIT: getattr(settings, _TARGET_WAIT)})
    if link is not None:
        service_settings = service_settings.model_copy(update=_SERVING_ONLY)
    app: FastAPI = create(service_settings, bus=bus)
    if link is not None:
        app.state.wake_relay = link.waker(name)
        if name == "webhook":
            app.state.wake_deliveries = link.waker(DELIVERIES)
    return app
