"""Customers: the list rendered from the `customer-list` view definition (columns, formats, filters,
sort, paging, search, actions), the create form, and a customer's page."""

import asyncio
from typing import Annotated, Any, cast
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.console.session import COOKIE_PATH, ApiResult, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, is_htmx, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)

# The definition's action handlers this console implements (others are not offered), and those that
# write (offered only to a user with `customers:write`).
LIST_ACTIONS = {"navigate-to-create", "import-customers-modal"}
ROW_ACTIONS = {"navigate-to-detail", "navigate-to-edit", "convert-lead"}
WRITING_ACTIONS = {"navigate-to-create", "import-customers-modal", "navigate-to-edit", "convert-lead"}
LIST_PARAMS = ("q", "sort", "page")
# The merge rules the customer page offers per field (the API's default is the primary's value),
# the fields a merge can combine, and the kinds of activity a user logs.
MERGE_FIELDS = (
    "firstName",
    "lastName",
    "companyName",
    "email",
    "phone",
    "status",
    "priority",
    "assignedToId",
)
COMBINABLE = ("tags", "notes")
ACTIVITY_TYPES = ("CALL", "EMAIL", "MEETING", "TASK", "NOTE", "SMS", "DEMO")
TICKET_TYPES = ("QUESTION", "PROBLEM", "REQUEST", "INCIDENT")
TICKET_PRIORITIES = ("LOW", "NORMAL", "HIGH", "URGENT")


def _offered(actions: list[dict[str, Any]], handlers: set[str], ctx: Console) -> list[dict[str, Any]]:
    writer = ctx.can("customers:write")
    return [
        a for a in actions if a["handler"] in handlers and (writer or a["handler"] not in WRITING_ACTIONS)
    ]


def row_actions_for(row: dict[str, Any], actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The row actions whose definition `condition` (field: value) the row meets."""
    return [a for a in actions if all(row.get(k) == v for k, v in (a.get("condition") or {}).items())]


def _filter_options(view: dict[str, Any], users: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
async def customers(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    view_r, users_r = await asyncio.gather(ctx.view("customer-list"), ctx.directory())
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

    def link(**changes: Any) -> str:
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
        actions=_offered(config.get("actions", []), LIST_ACTIONS, ctx),
        row_actions=_offered(config.get("rowActions", []), ROW_ACTIONS, ctx),
        row_actions_for=row_actions_for,
        export_link=f"{COOKIE_PATH}/customers/export?"
        + urlencode([(k, v) for k, v in params if k != "page"]),
        form={},
    )
    if is_htmx(request) and request.headers.get("hx-target") == "customer-table":
        return page(ctx, "customer_table.html", **context)
    return page(ctx, "customers.html", **context)


CREATE_FIELDS = ("type", "firstName", "lastName", "companyName", "email", "phone", "status")


@router.post("/customers")
async def create_customer(request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    body = {k: str(form[k]).strip() for k in CREATE_FIELDS if str(form.get(k, "")).strip()}
    r = await ctx.post("/api/v1/customers", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{r.body['id']}")
    return page(ctx, "customer_new.html", status_code=r.status, message=r.detail, form=body)


@router.get("/customers/new")
async def new_customer(ctx: Annotated[Console, Depends(console)]) -> Response:
    return page(ctx, "customer_new.html", form={})


NOTICES = {
    "saved": "Saved.",
    "converted": "Converted to a customer.",
    "assigned": "Assignment saved.",
    "merged": "The duplicate was merged into this customer.",
    "activity": "Activity added.",
}


async def _nothing() -> None:
    return None


async def customer_page(ctx: Console, customer_id: str, *, status_code: int = 200, **extra: Any) -> Response:
    """The customer with its timeline, opportunities and tickets, and the forms of what the user may
    do to it (each offered only with the permission it needs)."""
    can_edit = ctx.can("customers:write")
    # Seven at once: beyond asyncio.gather's typed overloads, hence the cast.
    answers = await asyncio.gather(
        ctx.get(f"/api/v1/customers/{customer_id}"),
        ctx.get(f"/api/v1/customers/{customer_id}/timeline", params={"pageSize": 50}),
        ctx.get("/api/v1/opportunities", params={"customerId": customer_id, "pageSize": 50}),
        ctx.get("/api/v1/tickets", params={"customerId": customer_id, "pageSize": 20})
        if ctx.can("tickets:read")
        else _nothing(),
        ctx.directory() if can_edit else _nothing(),
        ctx.get("/api/v1/teams", params={"active": "true"}) if can_edit else _nothing(),
        ctx.time_zone(),
    )
    customer, timeline, opportunities, tickets, users, teams, time_zone = cast(
        tuple[ApiResult, ApiResult, ApiResult, ApiResult | None, ApiResult | None, ApiResult | None, str],
        answers,
    )
    if not customer.ok:
        return page(ctx, "error.html", status_code=customer.status, message=customer.detail)
    merged = bool(customer.body.get("mergedIntoId"))
    notice = NOTICES.get(ctx.request.query_params.get("notice", ""))
    return page(
        ctx,
        "customer.html",
        status_code=status_code,
        customer=customer.body,
        timeline=timeline.body["items"] if timeline.ok else None,
        timeline_message=None if timeline.ok else timeline.detail,
        opportunities=opportunities.body["items"] if opportunities.ok else None,
        opportunities_message=None if opportunities.ok else opportunities.detail,
        tickets=tickets.body["items"] if tickets and tickets.ok else None,
        users=[u for u in users.body["items"] if u.get("isActive", True)] if users and users.ok else [],
        teams=teams.body["items"] if teams and teams.ok and isinstance(teams.body, dict) else [],
        time_zone=time_zone,
        can_sell=ctx.can("sales:write") and not merged,
        can_edit=can_edit and not merged,
        can_log=ctx.can("activities:write"),
        can_support=ctx.can("tickets:write") and not merged,
        ticket_types=TICKET_TYPES,
        ticket_priorities=TICKET_PRIORITIES,
        notice=ctx.translate(notice) if notice and status_code < 400 else None,
        activity_types=ACTIVITY_TYPES,
        merge_fields=MERGE_FIELDS,
        combinable=COMBINABLE,
        **extra,
    )


@router.get("/customers/{customer_id}")
async def customer(customer_id: str, ctx: Annotated[Console, Depends(console)]) -> Response:
    return await customer_page(ctx, customer_id)


@router.post("/customers/{customer_id}/opportunities")
async def create_opportunity(
    customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]
) -> Response:
    form = await check_csrf(request)
    body = {"customerId": customer_id, "title": str(form.get("title", "")).strip()}
    for name in ("amount", "currency", "expectedCloseDate"):
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    r = await ctx.post("/api/v1/opportunities", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}")
    return await customer_page(ctx, customer_id, status_code=r.status, message=r.detail, form=body)
