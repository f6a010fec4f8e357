"""My agenda: the signed-in user's open tasks and meetings, overdue, today and upcoming, in their own
time zone (activity-svc computes the buckets: `/api/v1/activities/agenda`)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)
BUCKETS = (("overdue", "Overdue"), ("dueToday", "Today"), ("upcoming", "Upcoming"))


@router.get("/agenda")
async def agenda(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    days = request.query_params.get("days") or "7"
    r = await ctx.get("/api/v1/activities/agenda", params={"days": days})
    if not r.ok:
        return page(ctx, "agenda.html", status_code=r.status, agenda=None, message=r.detail, buckets=BUCKETS)
    notice = "Marked done." if request.query_params.get("notice") == "done" else None
    return page(
        ctx,
        "agenda.html",
        agenda=r.body,
        buckets=BUCKETS,
        days=days,
        time_zone=r.body.get("timeZone"),
        can_complete=ctx.can("activities:write"),
        notice=ctx.translate(notice) if notice else None,
    )


@router.post("/activities/{activity_id}/complete")
async def complete(activity_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    await check_csrf(request)
    r = await ctx.post(f"/api/v1/activities/{activity_id}/complete", json={})
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/agenda?notice=done")
    agenda_r = await ctx.get("/api/v1/activities/agenda")
    return page(
        ctx,
        "agenda.html",
        status_code=r.status,
        agenda=agenda_r.body if agenda_r.ok else None,
        buckets=BUCKETS,
        days="7",
        time_zone=(agenda_r.body or {}).get("timeZone"),
        can_complete=True,
        message=r.detail,
    )
