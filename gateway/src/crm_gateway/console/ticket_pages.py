"""Support tickets: the list with each ticket's SLA due times and breach marks, and a ticket's page
with its status changes (the transitions the API allows) and the conversation (its communications)."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, is_htmx, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)

STATUSES = ("NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED")
PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")
# The status rules of the API guide (docs/api/ticket.md): only these moves are offered.
NEXT_STATUSES = {
    "NEW": ("OPEN", "ESCALATED"),
    "OPEN": ("PENDING", "RESOLVED", "ESCALATED"),
    "PENDING": ("OPEN", "ESCALATED"),
    "ESCALATED": ("OPEN", "PENDING", "RESOLVED", "ESCALATED"),
    "RESOLVED": ("OPEN", "CLOSED"),
    "CLOSED": (),
}
LIST_PARAMS = ("q", "status", "priority", "breached", "sort", "page")
SORTS = ("-createdAt", "resolutionDueAt", "firstResponseDueAt", "-priority", "ticketNumber")


def sla_marks(ticket: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The SLA's state per target: breached (recorded, or due and passed on an open ticket), paused,
    met, or due at a time."""
    marks = []
    for target, due_field, breached_field, done_field in (
        ("First response", "firstResponseDueAt", "responseBreached", "firstResponseAt"),
        ("Resolution", "resolutionDueAt", "resolutionBreached", "resolvedAt"),
    ):
        due = ticket.get(due_field)
        if ticket.get(breached_field):
            state = "breached"
        elif ticket.get(done_field):
            state = "met"
        elif not due:
            state = "none"
        elif ticket.get("slaPaused"):
            state = "paused"
        else:
            left = datetime.fromisoformat(due.replace("Z", "+00:00")) - now
            state = "soon" if left.total_seconds() < 3600 else "due"
        marks.append({"target": target, "due": due, "state": state})
    return marks


@router.get("/tickets")
async def tickets(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    query = request.query_params
    params = [(k, v) for k in LIST_PARAMS for v in query.getlist(k) if v]
    result, time_zone = await asyncio.gather(
        ctx.get("/api/v1/tickets", params=[*params, ("pageSize", "25")]), ctx.time_zone()
    )

    def link(**changes: Any) -> str:
        current = dict(params) | changes
        return f"{COOKIE_PATH}/tickets?" + urlencode({k: v for k, v in current.items() if v})

    now = datetime.now(UTC)
    context: dict[str, Any] = dict(
        data=result.body if result.ok else None,
        message=None if result.ok else result.detail,
        chosen=dict(params),
        statuses=STATUSES,
        priorities=PRIORITIES,
        sorts=SORTS,
        link=link,
        marks={t["id"]: sla_marks(t, now) for t in (result.body or {}).get("items", [])} if result.ok else {},
        time_zone=time_zone,
    )
    if is_htmx(request) and request.headers.get("hx-target") == "ticket-table":
        return page(ctx, "ticket_table.html", **context)
    return page(ctx, "tickets.html", status_code=200 if result.ok else result.status, **context)


async def ticket_page(ctx: Console, ticket_id: str, *, status_code: int = 200, **extra: Any) -> Response:
    ticket, conversation, users, time_zone = await asyncio.gather(
        ctx.get(f"/api/v1/tickets/{ticket_id}"),
        ctx.get(f"/api/v1/tickets/{ticket_id}/communications", params={"pageSize": 200}),
        ctx.directory(),
        ctx.time_zone(),
    )
    if not ticket.ok:
        return page(ctx, "error.html", status_code=ticket.status, message=ticket.detail)
    names = {u["id"]: u["fullName"] for u in (users.body or {}).get("items", [])} if users.ok else {}
    notice = ctx.request.query_params.get("notice")
    return page(
        ctx,
        "ticket.html",
        status_code=status_code,
        ticket=ticket.body,
        marks=sla_marks(ticket.body, datetime.now(UTC)),
        conversation=conversation.body["items"] if conversation.ok else None,
        conversation_message=None if conversation.ok else conversation.detail,
        names=names,
        next_statuses=NEXT_STATUSES.get(ticket.body["status"], ()),
        can_work=ctx.can("tickets:write"),
        time_zone=time_zone,
        notice=ctx.translate({"status": "Status changed.", "reply": "Added to the conversation."}[notice])
        if notice in ("status", "reply") and status_code < 400
        else None,
        **extra,
    )


@router.get("/tickets/{ticket_id}")
async def ticket(ticket_id: str, ctx: Annotated[Console, Depends(console)]) -> Response:
    return await ticket_page(ctx, ticket_id)


@router.post("/tickets/{ticket_id}/status")
async def change_status(
    ticket_id: str, request: Request, ctx: Annotated[Console, Depends(console)]
) -> Response:
    form = await check_csrf(request)
    body = {"status": str(form.get("status", ""))}
    for name in ("resolution", "reason"):
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    r = await ctx.post(f"/api/v1/tickets/{ticket_id}/status", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/tickets/{ticket_id}?notice=status")
    return await ticket_page(ctx, ticket_id, status_code=r.status, message=r.detail, status_form=body)


@router.post("/tickets/{ticket_id}/communications")
async def reply(ticket_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    body = {
        "direction": str(form.get("direction", "OUTBOUND")),
        "channel": str(form.get("channel", "EMAIL")),
        "internal": bool(form.get("internal")),
        "body": str(form.get("body", "")).strip(),
    }
    r = await ctx.post(f"/api/v1/tickets/{ticket_id}/communications", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/tickets/{ticket_id}?notice=reply")
    return await ticket_page(ctx, ticket_id, status_code=r.status, message=r.detail, reply_form=body)
