"""Customers: the list rendered from the `customer-list` view definition (columns, formats, filters,
sort, paging, search, actions), the create form, and a customer's page."""

import asyncio
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request

from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, is_htmx, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)

# The definition's action handlers this console implements; others are not offered (yet).
LIST_ACTIONS = {"navigate-to-create"}
ROW_ACTIONS = {"navigate-to-detail"}
LIST_PARAMS = ("q", "sort", "page")


def _filter_options(view: dict, users: list[dict]) -> list[dict]:
    filters = []
    for f in view["config"].get("filters", []):
        options = f.get("options")
        if options is None and f.get("dataSource") == "User":
            # The seed's User has `name`; the gateway's user read model calls it `fullName`.
            label, value = f.get("labelField", "name"), f.get("valueField", "id")
            options = [{"label": u.get(label) or u.get("fullName"), "value": u.get(value)} for u in users]
        if options:  # a filter whose choices cannot be loaded for this user is left out
            filters.append({**f, "options": options})
    return filters


@router.get("/customers")
async def customers(request: Request, ctx: Annotated[Console, Depends(console)]):
    view_r, users_r = await asyncio.gather(
        ctx.get("/api/v1/views/customer-list"), ctx.get("/api/v1/users", params={"pageSize": 200})
    )
    if not view_r.ok:
        return page(ctx, "error.html", status_code=view_r.status, message=view_r.detail)
    view = view_r.body
    config = view["config"]
    users = users_r.body.get("items", []) if users_r.ok and isinstance(users_r.body, dict) else []
    filters = _filter_options(view, users)
    query = request.query_params
    params: list[tuple[str, str]] = [(k, query[k]) for k in LIST_PARAMS if query.get(k)]
    chosen = {f["name"]: query.get(f["name"], "") for f in filters}
    params += [(name, value) for name, value in chosen.items() if value]
    data = await ctx.get("/api/v1/views/customer-list/data", params=params)
    sort = query.get("sort") or ",".join(
        ("-" if s["direction"] == "desc" else "") + s["field"] for s in config.get("defaultSort", [])
    )

    def link(**changes) -> str:
        """This list's URL with some parameters changed (sorting or paging keeps the filters)."""
        current = {k: v for k, v in [*params, ("sort", sort)] if v}
        current.update({k: v for k, v in changes.items()})
        return f"{COOKIE_PATH}/customers?" + urlencode(
            {k: v for k, v in current.items() if v not in (None, "")}
        )

    enum_labels = {f["name"]: {o["value"]: o["label"] for o in f["options"]} for f in filters}
    context = dict(
        view=view,
        columns=config["columns"],
        filters=filters,
        chosen=chosen,
        q=query.get("q", ""),
        sort=sort,
        data=data.body if data.ok else None,
        message=None if data.ok else data.detail,
        link=link,
        enum_labels=enum_labels,
        actions=[a for a in config.get("actions", []) if a["handler"] in LIST_ACTIONS],
        row_actions=[a for a in config.get("rowActions", []) if a["handler"] in ROW_ACTIONS],
        can_create=ctx.can("customers:write"),
        form={},
    )
    if is_htmx(request) and request.headers.get("hx-target") == "customer-table":
        return page(ctx, "customer_table.html", **context)
    return page(ctx, "customers.html", **context)


CREATE_FIELDS = ("type", "firstName", "lastName", "companyName", "email", "phone", "status")


@router.post("/customers")
async def create_customer(request: Request, ctx: Annotated[Console, Depends(console)]):
    form = await check_csrf(request)
    body = {k: str(form[k]).strip() for k in CREATE_FIELDS if str(form.get(k, "")).strip()}
    r = await ctx.post("/api/v1/customers", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{r.body['id']}")
    return page(ctx, "customer_new.html", status_code=r.status, message=r.detail, form=body)


@router.get("/customers/new")
async def new_customer(ctx: Annotated[Console, Depends(console)]):
    return page(ctx, "customer_new.html", form={})


async def _customer_page(ctx: Console, customer_id: str, *, status_code: int = 200, **extra):
    customer, timeline, opportunities = await asyncio.gather(
        ctx.get(f"/api/v1/customers/{customer_id}"),
        ctx.get(f"/api/v1/customers/{customer_id}/timeline", params={"pageSize": 50}),
        ctx.get("/api/v1/opportunities", params={"customerId": customer_id, "pageSize": 50}),
    )
    if not customer.ok:
        return page(ctx, "error.html", status_code=customer.status, message=customer.detail)
    return page(
        ctx,
        "customer.html",
        status_code=status_code,
        customer=customer.body,
        timeline=timeline.body["items"] if timeline.ok else None,
        timeline_message=None if timeline.ok else timeline.detail,
        opportunities=opportunities.body["items"] if opportunities.ok else None,
        opportunities_message=None if opportunities.ok else opportunities.detail,
        can_sell=ctx.can("sales:write"),
        **extra,
    )


@router.get("/customers/{customer_id}")
async def customer(customer_id: str, ctx: Annotated[Console, Depends(console)]):
    return await _customer_page(ctx, customer_id)


@router.post("/customers/{customer_id}/opportunities")
async def create_opportunity(customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]):
    form = await check_csrf(request)
    body = {"customerId": customer_id, "title": str(form.get("title", "")).strip()}
    for name in ("amount", "currency", "expectedCloseDate"):
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    r = await ctx.post("/api/v1/opportunities", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}")
    return await _customer_page(ctx, customer_id, status_code=r.status, message=r.detail, form=body)
