from pathlib import Path

from crm_common.app import create_service_app
from crm_common.events.bus import Bus
from fastapi import FastAPI

from pipeline_svc.settings import Settings


def create_app(settings: Settings | None = None, *, bus: Bus | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="CRM pipeline service",
        description="Stages, opportunities, products, invoices, forecast and the pipeline board.",
        routers=[],
        migrations=Path(__file__).parent / "migrations",
        bus=bus,
    )
