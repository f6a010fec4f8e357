"""The pipeline kanban rendered from the `sales-pipeline` view definition: a column per active stage
(from the view's data), the definition's card fields and summary fields, drag and drop to move a card
(console.js posts the stage change here), win and lose."""

import asyncio
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, is_htmx, page

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)
# Cards per column: a few first (the board's time and size grow with them: at 50 a column the page
# was ~0.5 MB for six stages), more on request, up to the API's 200.
CARD_STEPS = (20, 50, 100, 200)


def _cards(request: Request) -> int:
    """The page's `cards`; for an htmx refresh (after a win or a drag), the one of the page it is on."""
    raw = request.query_params.get("cards")
    if raw is None and (current := request.headers.get("hx-current-url")):
        raw = parse_qs(urlsplit(current).query).get("cards", [None])[0]
    return int(raw) if raw in {str(c) for c in CARD_STEPS} else CARD_STEPS[0]


async def _board(
    ctx: Console, *, status_code: int = 200, message: str | None = None, notice: str | None = None
) -> Response:
    cards = _cards(ctx.request)
    view, data = await asyncio.gather(
        ctx.view("sales-pipeline"),
        ctx.get("/api/v1/views/sales-pipeline/data", params={"cardsPerColumn": cards}),
    )
    if not view.ok:
        return page(ctx, "error.html", status_code=view.status, message=view.detail)
    template = "pipeline_board.html" if is_htmx(ctx.request) else "pipeline.html"
    return page(
        ctx,
        template,
        status_code=status_code,
        view=view.body,
        config=view.body["config"],
        columns=data.body["columns"] if data.ok else [],
        message=message or (None if data.ok else data.detail),
        notice=notice,
        can_sell=ctx.can("sales:write"),
        more_cards=next((c for c in CARD_STEPS if c > cards), None),
    )


@router.get("/pipeline")
async def pipeline(ctx: Annotated[Console, Depends(console)]) -> Response:
    return await _board(ctx)


@router.post("/opportunities/{opportunity_id}/stage")
async def move(opportunity_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    """Called by the drag and drop: JSON back, so the script can put a refused card back."""
    form = await check_csrf(request)
    r = await ctx.post(
        f"/api/v1/opportunities/{opportunity_id}/stage", json={"stageId": str(form.get("stageId"))}
    )
    if r.ok:
        return JSONResponse({"ok": True, "stageId": r.body["stageId"]})
    unmet = (r.body or {}).get("unmetRequirements", []) if isinstance(r.body, dict) else []
    return JSONResponse({"ok": False, "detail": r.detail, "unmet": unmet}, status_code=r.status)


@router.post("/opportunities/{opportunity_id}/win")
async def win(opportunity_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    await check_csrf(request)
    r = await ctx.post(f"/api/v1/opportunities/{opportunity_id}/win", json={})
    if r.ok:
        return await _board(ctx, notice=ctx.translate("Won: {title}.", title=r.body["opportunity"]["title"]))
    return await _board(ctx, status_code=200 if is_htmx(request) else r.status, message=r.detail)


@router.post("/opportunities/{opportunity_id}/lose")
async def lose(opportunity_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    r = await ctx.post(
        f"/api/v1/opportunities/{opportunity_id}/lose", json={"lostReason": str(form.get("lostReason", ""))}
    )
    if r.ok:
        return await _board(ctx, notice=ctx.translate("Lost: {title}.", title=r.body["title"]))
    return await _board(ctx, status_code=200 if is_htmx(request) else r.status, message=r.detail)
