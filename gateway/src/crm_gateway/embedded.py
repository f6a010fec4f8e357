"""The embedded default: every service and the gateway in one process, one SQLite file per service,
events on the in-process bus through the same outbox and inbox tables."""

from contextlib import AsyncExitStack, asynccontextmanager

import activity_svc.app
import activity_svc.settings
import campaign_svc.app
import campaign_svc.settings
import customer_svc.app
import customer_svc.settings
import pipeline_svc.app
import pipeline_svc.settings
import ticket_svc.app
import ticket_svc.settings
from crm_common.events.memory_bus import MemoryBus
from fastapi import FastAPI

from crm_gateway.app import create_app as gateway_app
from crm_gateway.settings import GatewaySettings

SERVICES = {
    "customer": (customer_svc.app.create_app, customer_svc.settings.Settings),
    "pipeline": (pipeline_svc.app.create_app, pipeline_svc.settings.Settings),
    "activity": (activity_svc.app.create_app, activity_svc.settings.Settings),
    "ticket": (ticket_svc.app.create_app, ticket_svc.settings.Settings),
    "campaign": (campaign_svc.app.create_app, campaign_svc.settings.Settings),
}


def create_embedded_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    bus = MemoryBus(delivery_limit=settings.event_delivery_limit)
    services = {
        name: create(
            settings_cls(data_dir=settings.data_dir, jwt_public_key_file=settings.public_key_path()), bus=bus
        )
        for name, (create, settings_cls) in SERVICES.items()
    }
    gateway = gateway_app(settings, local_services=services, bus=bus)

    # Mounted apps get no lifespan of their own: the gateway's runs theirs, and closes the bus last.
    gateway_lifespan = gateway.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async with AsyncExitStack() as stack:
            stack.push_async_callback(bus.close)
            await stack.enter_async_context(gateway_lifespan(app))
            for service_app in services.values():
                await stack.enter_async_context(service_app.router.lifespan_context(service_app))
            yield

    gateway.router.lifespan_context = lifespan
    gateway.state.services = services
    return gateway
