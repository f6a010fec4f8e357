from pathlib import Path

from crm_common.app import create_service_app
from crm_common.events.bus import Bus
from crm_common.idempotency import IdempotencyMiddleware
from fastapi import FastAPI

from campaign_svc.api import ROUTERS
from campaign_svc.events.handlers import handlers
from campaign_svc.service import archiving
from campaign_svc.settings import Settings


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="CRM campaign service",
        description="Marketing campaigns, targets, tracking and attribution.",
        routers=ROUTERS,
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers(settings),
        bus=bus,
        purge_archived=archiving.purge,
    )
    app.state.campaign_settings = settings
    # Tests (or an embedding) may route customer-svc calls through a transport of their own.
    app.state.customer_transport = None
    # `Idempotency-Key` on POST/PATCH: a retried write happens once.
    app.add_middleware(IdempotencyMiddleware)
    return app
