"""The web console at /app: server-rendered pages (Jinja2) with htmx partial updates, rendered from the
seed's view definitions and calling the public API as the signed-in user. See docs/console.md."""

import asyncio

from fastapi import FastAPI

from crm_gateway.console import (
    agenda_pages,
    auth_pages,
    campaign_pages,
    customer_actions,
    customer_files,
    customer_pages,
    dashboard_pages,
    memo,
    pipeline_pages,
    ticket_pages,
)
from crm_gateway.console.session import gateway_client


def install(app: FastAPI) -> None:
    """Adds the console's routes (kept out of the OpenAPI document); call before the catch-all mount."""
    app.state.console_client = gateway_client(app)
    app.state.console_memo = memo.Memo()
    app.state.console_refresh_lock = asyncio.Lock()
    # customer_files before customer_pages: /customers/import is not a customer's id.
    for module in (
        auth_pages,
        dashboard_pages,
        customer_files,
        customer_pages,
        customer_actions,
        pipeline_pages,
        ticket_pages,
        agenda_pages,
        campaign_pages,
    ):
        app.include_router(module.router, include_in_schema=False)
