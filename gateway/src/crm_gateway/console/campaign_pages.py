"""Campaigns: the list, and a campaign's page with its funnel metrics (targets to conversions, drawn
as an SVG on the server), leads, cost per lead, attributed revenue and ROI, and its status actions."""

import asyncio
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.console import render
from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)

STATUSES = ("PLANNING", "ACTIVE", "PAUSED", "COMPLETED", "CANCELLED")
TYPES = ("EMAIL", "SMS", "SOCIAL", "WEBINAR", "TRADE_SHOW", "DIRECT_MAIL", "OTHER")
# The status actions and the states they start from (docs/api/campaign.md): only these are offered.
ACTIONS = {
    "activate": ("PLANNING", "PAUSED"),
    "pause": ("ACTIVE",),
    "complete": ("ACTIVE", "PAUSED"),
    "cancel": ("PLANNING", "ACTIVE", "PAUSED"),
}
# The funnel's steps in order, as the metrics name them.
STEPS = (
    ("targets", "Targets"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
    ("responded", "Responded"),
    ("converted", "Converted"),
)
LIST_PARAMS = ("q", "status", "type", "sort", "page")


@router.get("/campaigns")
async def campaigns(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    return await _campaign_list(request, ctx)


async def _campaign_list(
    request: Request, ctx: Console, *, status_code: int | None = None, **extra: Any
) -> Response:
    form = extra.pop("form", None)
    query = request.query_params
    params = [(k, query[k]) for k in LIST_PARAMS if query.get(k)]
    r = await ctx.get("/api/v1/campaigns", params=[*params, ("pageSize", "25")])

    def link(**changes: Any) -> str:
        current = dict(params) | changes
        return f"{COOKIE_PATH}/campaigns?" + urlencode({k: v for k, v in current.items() if v})

    return page(
        ctx,
        "campaigns.html",
        status_code=status_code or (200 if r.ok else r.status),
        can_create=ctx.can("campaigns:write"),
        form=form or {},
        data=r.body if r.ok else None,
        message=extra.pop("message", None) or (None if r.ok else r.detail),
        chosen=dict(params),
        statuses=STATUSES,
        types=TYPES,
        link=link,
        **extra,
    )


@router.post("/campaigns")
async def create_campaign(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    """A new campaign; its dates are days in the user's time zone, sent as that day's start there."""
    form = await check_csrf(request)
    entered = {
        n: str(form.get(n, "")).strip()
        for n in ("name", "type", "startDate", "endDate", "budget", "currency")
    }
    body = {k: v for k, v in entered.items() if v and k not in ("startDate", "endDate")}
    zone = render.zone(await ctx.time_zone())
    for name in ("startDate", "endDate"):
        if entered[name]:
            try:
                day = date.fromisoformat(entered[name])
            except ValueError:
                return await _campaign_list(
                    request, ctx, status_code=422, message=f"{name}: {entered[name]}", form=entered
                )
            body[name] = datetime.combine(day, time(), tzinfo=zone).isoformat()
    r = await ctx.post("/api/v1/campaigns", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/campaigns/{r.body['id']}")
    return await _campaign_list(request, ctx, status_code=r.status, message=r.detail, form=entered)


def funnel(metrics: dict[str, Any], translate: Callable[..., str]) -> dict[str, Any]:
    """The funnel chart's geometry: one bar per step, with the step's count and rate."""
    steps: list[dict[str, Any]] = []
    for key, label in STEPS:
        value = metrics.get(key)
        count, rate = (value.get("count"), value.get("rate")) if isinstance(value, dict) else (value, None)
        amount = f"{rate}%" if rate is not None else ""
        steps.append({"label": translate(label), "count": count or 0, "totals": [], "rate": amount})
    chart = render.funnel_svg(steps)
    for row, step in zip(chart["rows"], steps, strict=True):
        row["rate"] = step["rate"]
    return chart


async def campaign_page(ctx: Console, campaign_id: str, *, status_code: int = 200, **extra: Any) -> Response:
    campaign, metrics = await asyncio.gather(
        ctx.get(f"/api/v1/campaigns/{campaign_id}"), ctx.get(f"/api/v1/campaigns/{campaign_id}/metrics")
    )
    if not campaign.ok:
        return page(ctx, "error.html", status_code=campaign.status, message=campaign.detail)
    status = campaign.body["status"]
    notice = ctx.request.query_params.get("notice")
    return page(
        ctx,
        "campaign.html",
        status_code=status_code,
        campaign=campaign.body,
        metrics=metrics.body if metrics.ok else None,
        metrics_message=None if metrics.ok else metrics.detail,
        chart=funnel(metrics.body, ctx.translate) if metrics.ok else None,
        actions=[a for a, origins in ACTIONS.items() if status in origins]
        if ctx.can("campaigns:write")
        else [],
        notice=ctx.translate("Status changed.") if notice == "status" and status_code < 400 else None,
        **extra,
    )


@router.get("/campaigns/{campaign_id}")
async def campaign(campaign_id: str, ctx: Annotated[Console, Depends(console)]) -> Response:
    return await campaign_page(ctx, campaign_id)


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(
    campaign_id: str, action: str, request: Request, ctx: Annotated[Console, Depends(console)]
) -> Response:
    await check_csrf(request)
    if action not in ACTIONS:
        return page(ctx, "error.html", status_code=404, message=ctx.translate("Not found."))
    r = await ctx.post(f"/api/v1/campaigns/{campaign_id}/{action}", json={})
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/campaigns/{campaign_id}?notice=status")
    return await campaign_page(ctx, campaign_id, status_code=r.status, message=r.detail)
