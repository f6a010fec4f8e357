"""What the routes of ticket-svc share: the access each one requires, the If-Match header, the
service's clock and settings, and the router every /tickets module starts from."""

from datetime import datetime
from typing import Annotated

from crm_common.auth import Principal, require, require_access
from crm_common.concurrency import if_match_header
from crm_common.errors import problem_doc
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import APIRouter, Depends, Request

SupportAccess = Annotated[Principal, Depends(require_access("tickets"))]
# Tickets: the caller with their record scopes (crm_common.record_scope).
TicketCaller = Annotated[ScopedCaller, Depends(scoped("tickets"))]
# A POST that only reads (batch/read) needs read access, like a GET.
TicketReader = Annotated[ScopedCaller, Depends(scoped("tickets", "read"))]
Admin = Annotated[Principal, Depends(require("admin"))]
IfMatch = Annotated[str | None, if_match_header("The ETag you read; a stale one is a 412.")]


def current_time(request: Request) -> datetime:
    """The service's clock (tests replace `app.state.clock`)."""
    return request.app.state.clock()


Now = Annotated[datetime, Depends(current_time)]


def settings_of(request: Request):
    return request.app.state.settings


def tickets_router() -> APIRouter:
    """A router of routes under /api/v1/tickets (one per module of this package)."""
    return APIRouter(prefix="/api/v1/tickets", tags=["tickets"], responses=problem_doc(401, 403))
