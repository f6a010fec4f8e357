from pathlib import Path

from crm_common.app import create_service_app
from crm_common.events.bus import Bus
from crm_common.idempotency import IdempotencyMiddleware
from fastapi import FastAPI

from customer_svc.api import ROUTERS
from customer_svc.events.handlers import HANDLERS
from customer_svc.service import archiving
from customer_svc.settings import Settings


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    app = create_service_app(
        settings or Settings(),
        title="CRM customer service",
        description="Customers and leads: create, search, convert, merge, assign, segment, import, export.",
        routers=ROUTERS,
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        bus=bus,
        purge_archived=archiving.purge,
    )
    # `Idempotency-Key` on POST/PATCH: a retried write happens once. The import streams its body
    # (never held in memory) and commits batch by batch: its key stores the final report.
    app.add_middleware(IdempotencyMiddleware, streamed={"/api/v1/customers/import"})
    return app
