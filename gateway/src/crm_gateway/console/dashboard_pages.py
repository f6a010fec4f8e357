"""The dashboard: the `crm-dashboard` view's widgets, their titles from its definition, their data
from /api/v1/dashboard; the funnel and revenue drawn as SVG on the server."""

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from crm_gateway.console import render
from crm_gateway.console.session import COOKIE_PATH, Console, console
from crm_gateway.console.web import ConsoleRoute, page

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)


@router.get("")
async def dashboard(ctx: Annotated[Console, Depends(console)]) -> Response:
    view, data = await asyncio.gather(ctx.view("crm-dashboard"), ctx.get("/api/v1/dashboard"))
    if not data.ok:
        return page(ctx, "dashboard.html", message=data.detail, widgets={}, titles={})
    titles = {w["id"]: w["title"] for w in view.body["config"]["widgets"]} if view.ok else {}
    metric_labels = {}
    if view.ok:
        for widget in view.body["config"]["widgets"]:
            for metric in widget.get("config", {}).get("metrics", []):
                metric_labels[metric["name"]] = metric["displayName"]
    widgets = data.body["widgets"]
    stages = (widgets["pipelineFunnel"].get("data") or {}).get("stages", [])
    metrics = widgets["salesMetrics"].get("data") or {}
    return page(
        ctx,
        "dashboard.html",
        title=view.body["displayName"] if view.ok else "Dashboard",
        titles=titles,
        labels=metric_labels,
        widgets=widgets,
        funnel=render.funnel_svg([s for s in stages if not s["isWon"] and not s["isLost"]]),
        revenue=render.revenue_svg(metrics.get("totalRevenue") or [], stages),
    )
