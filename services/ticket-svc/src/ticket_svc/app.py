import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

from crm_common.app import Runtime, create_service_app
from crm_common.events.bus import Bus
from crm_common.idempotency import IdempotencyMiddleware
from fastapi import FastAPI

from ticket_svc.api import ROUTERS
from ticket_svc.events.handlers import HANDLERS
from ticket_svc.service import archiving
from ticket_svc.settings import Settings
from ticket_svc.worker.folding import run_folding
from ticket_svc.worker.scheduler import run_scheduler

log = logging.getLogger("crm.ticket")


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()

    async def start_scheduler(runtime: Runtime) -> None:
        if settings.escalation_enabled:
            task = run_scheduler(
                runtime.db,
                clock=lambda: app.state.clock(),
                interval=settings.escalation_interval_seconds,
                batch_size=settings.escalation_batch_size,
            )
            # Cancelled with the other background tasks when the app stops.
            runtime.tasks.append(asyncio.create_task(task, name="ticket-escalation-scheduler"))
        # The metric deltas the ticket triggers append, folded into the kept totals.
        folding = run_folding(runtime.db, interval=settings.metrics_fold_interval_seconds)
        runtime.tasks.append(asyncio.create_task(folding, name="ticket-metrics-folding"))

    app = create_service_app(
        settings,
        title="CRM ticket service",
        description="Support tickets with SLA, escalation, communications and satisfaction.",
        routers=ROUTERS,
        migrations=Path(__file__).parent / "migrations",
        handlers=HANDLERS,
        bus=bus,
        background=start_scheduler,
        purge_archived=archiving.purge,
        openapi_tags=[
            {"name": "tickets", "description": "Support tickets, their communications and metrics."},
            {"name": "sla-policies", "description": "SLA targets, business hours and pause statuses."},
        ],
    )
    # `Idempotency-Key` on POST/PATCH: a retried write (a ticket, a message) happens once.
    app.add_middleware(IdempotencyMiddleware)
    # The time the service works with; tests set their own.
    app.state.clock = lambda: datetime.now(UTC)
    return app
