from pathlib import Path

from crm_common.app import Runtime, create_service_app
from crm_common.events.bus import Bus
from crm_common.idempotency import IdempotencyMiddleware
from fastapi import FastAPI

from webhook_svc.api import ROUTERS
from webhook_svc.delivery.worker import DeliveryWorker
from webhook_svc.events.handlers import handlers, wanted
from webhook_svc.service.targets import Guard
from webhook_svc.settings import Settings


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    settings = settings or Settings()
    guard = Guard(allowed_networks=tuple(settings.allowed_networks))
    worker = DeliveryWorker(settings, guard)

    async def open_worker(runtime: Runtime) -> None:
        worker.open(runtime.db)

    async def start_worker(runtime: Runtime) -> None:
        # Beside the outbox relay: deliveries left pending by a previous run go out at once.
        runtime.tasks.append(worker.start())

    async def stop_worker(runtime: Runtime) -> None:
        await worker.close()

    app = create_service_app(
        settings,
        title="CRM webhook service",
        description="Signed HTTP deliveries (Standard Webhooks) of the platform's events to subscribed endpoints.",
        routers=ROUTERS,
        migrations=Path(__file__).parent / "migrations",
        handlers=handlers(worker),
        event_wanted=wanted,
        bus=bus,
        on_startup=open_worker,
        background=start_worker,
        on_shutdown=stop_worker,
    )
    app.state.webhook_settings = settings
    app.state.webhook_guard = guard
    app.state.webhook_worker = worker
    # What the API calls when it queued a delivery: this process's loop, or (a serving worker of `crm
    # up --workers`) the main process's, which sets its own.
    app.state.wake_deliveries = worker.wake
    # `Idempotency-Key` on POST/PATCH/DELETE: a retried write happens once.
    app.add_middleware(IdempotencyMiddleware)
    return app
