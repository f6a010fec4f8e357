from pathlib import Path

from crm_common.app import create_service_app
from crm_common.events.bus import Bus
from crm_common.idempotency import IdempotencyMiddleware
from fastapi import FastAPI

from activity_svc.api import ROUTERS
from activity_svc.events.handlers import HANDLERS
from activity_svc.service import archiving
from activity_svc.settings import Settings


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    app = create_service_app(
        settings or Settings(),
        title="CRM activity service",
        description="Calls, meetings, tasks, notes and the timeline of every customer, opportunity and ticket.",
        routers=ROUTERS,
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        bus=bus,
        purge_archived=archiving.purge,
    )
    # `Idempotency-Key` on POST/PATCH/DELETE: a retried write happens once.
    app.add_middleware(IdempotencyMiddleware)
    return app
