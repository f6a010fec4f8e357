"""Customers in and out as files: the CSV import (the view's `import-customers-modal` action) with
each refused row shown, and the CSV export of the list as filtered. Registered before the customer
page's routes, whose `/customers/{id}` would otherwise take `import` and `export` for ids."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, page

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)
CHUNK = 64 * 1024


@router.get("/customers/import")
async def import_form(ctx: Annotated[Console, Depends(console)]) -> Response:
    return page(ctx, "customer_import.html", result=None)


@router.post("/customers/import")
async def import_file(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return page(
            ctx,
            "customer_import.html",
            status_code=422,
            result=None,
            message=ctx.translate("Choose a CSV file."),
        )

    async def chunks() -> AsyncIterator[
        bytes
    ]:  # the file passes through as it is read, never whole in memory
        while chunk := await upload.read(CHUNK):
            yield chunk

    dry_run = bool(form.get("dryRun"))
    r = await ctx.post(
        "/api/v1/customers/import",
        params={"dryRun": "true" if dry_run else "false", "format": "csv"},
        content=chunks(),
        headers={"content-type": "text/csv"},
    )
    if not r.ok:
        return page(ctx, "customer_import.html", status_code=r.status, result=None, message=r.detail)
    return page(ctx, "customer_import.html", result=r.body, file_name=upload.filename)


@router.get("/customers/export")
async def export(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    """The API's export streamed on to the browser, with the list's search, filters and sort."""
    response = await ctx.stream(
        "GET", "/api/v1/customers/export", params=list(request.query_params.multi_items())
    )
    if response.status_code >= 400:
        await response.aread()
        await response.aclose()
        detail = response.json().get("detail") if "json" in response.headers.get("content-type", "") else None
        return page(
            ctx, "error.html", status_code=response.status_code, message=detail or response.reason_phrase
        )
    return StreamingResponse(
        response.aiter_raw(),
        media_type=response.headers.get("content-type", "text/csv"),
        headers={
            "content-disposition": response.headers.get(
                "content-disposition", "attachment; filename=customers.csv"
            )
        },
        background=BackgroundTask(response.aclose),
    )
