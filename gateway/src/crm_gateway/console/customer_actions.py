"""What a user does to one customer from its page: edit (with the version conflict shown when someone
else saved first), convert, assign, merge a duplicate into it, and add an activity. Each is the public
API's operation called as the user; a refusal shows the problem's message on the page."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import FormData

from crm_gateway.console import render
from crm_gateway.console.customer_pages import COMBINABLE, MERGE_FIELDS, customer_page
from crm_gateway.console.session import COOKIE_PATH, Console, check_csrf, console
from crm_gateway.console.web import ConsoleRoute, page, redirect

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)

# The fields the edit form offers, with their input kind (choices for the enums).
EDIT_FIELDS: list[tuple[str, str, tuple[str, ...]]] = [
    ("type", "Type", ("INDIVIDUAL", "COMPANY")),
    ("firstName", "First name", ()),
    ("lastName", "Last name", ()),
    ("title", "Job title", ()),
    ("companyName", "Company name", ()),
    ("industry", "Industry", ()),
    ("email", "Email", ()),
    ("phone", "Phone", ()),
    ("mobile", "Mobile", ()),
    ("website", "Website", ()),
    ("status", "Status", ("LEAD", "PROSPECT", "CUSTOMER", "INACTIVE")),
    ("priority", "Priority", ("LOW", "MEDIUM", "HIGH", "CRITICAL")),
    ("notes", "Notes", ()),
]


def _text(value: object) -> str:
    return "" if value is None else str(value).replace("\r\n", "\n").strip()


def _field(form: FormData, name: str) -> str:
    """A form value as compared with the API's: browsers send a textarea's line breaks as CRLF."""
    return _text(form.get(name, ""))


def _edit_page(
    ctx: Console,
    customer: dict[str, Any],
    values: dict[str, Any],
    was: dict[str, Any],
    version: int | str,
    **extra: Any,
) -> Response:
    return page(
        ctx,
        "customer_edit.html",
        customer=customer,
        fields=EDIT_FIELDS,
        values=values,
        was=was,
        version=version,
        **extra,
    )


@router.get("/customers/{customer_id}/edit")
async def edit_form(customer_id: str, ctx: Annotated[Console, Depends(console)]) -> Response:
    r = await ctx.get(f"/api/v1/customers/{customer_id}")
    if not r.ok:
        return page(ctx, "error.html", status_code=r.status, message=r.detail)
    values = {name: _text(r.body.get(name)) for name, _, _ in EDIT_FIELDS}
    return _edit_page(ctx, r.body, values, values, r.body["version"])


@router.post("/customers/{customer_id}/edit")
async def edit(customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    """Sends only what the user changed (against the values the form showed), with the version the
    form was read at as If-Match: a save over someone else's newer one is refused (412) and shown."""
    form = await check_csrf(request)
    mine = {name: _field(form, name) for name, _, _ in EDIT_FIELDS}
    was = {name: _field(form, f"was-{name}") for name, _, _ in EDIT_FIELDS}
    version = str(form.get("version", ""))
    changes = {name: (value or None) for name, value in mine.items() if value != was[name]}
    if not changes:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}")
    r = await ctx.patch(
        f"/api/v1/customers/{customer_id}", json=changes, headers={"if-match": f'W/"{version}"'}
    )
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}?notice=saved")
    current = await ctx.get(f"/api/v1/customers/{customer_id}")
    if not current.ok:
        return page(ctx, "error.html", status_code=current.status, message=current.detail)
    if r.status == 412:
        # Someone saved first: show what they changed beside what this user typed, and let a new save
        # (against the current version) apply this user's changes on top of theirs.
        now = {name: _text(current.body.get(name)) for name, _, _ in EDIT_FIELDS}
        conflicts = [
            {"label": label, "theirs": now[name], "yours": mine[name], "mine": name in changes}
            for name, label, _ in EDIT_FIELDS
            if now[name] != was[name]
        ]
        # The form shows their values where this user changed nothing, so saving again cannot undo
        # theirs with what this user merely saw.
        merged = {name: mine[name] if name in changes else now[name] for name in now}
        return _edit_page(
            ctx,
            current.body,
            merged,
            now,
            current.body["version"],
            status_code=412,
            conflict=True,
            conflicts=conflicts,
            message=r.detail,
        )
    # Any other refusal: the user's values stay in the form, with the problem's message.
    return _edit_page(ctx, current.body, mine, was, version, status_code=r.status, message=r.detail)


@router.post("/customers/{customer_id}/convert")
async def convert(customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    body: dict[str, Any] = {}
    title = str(form.get("title", "")).strip()
    if title:
        opportunity = {"title": title}
        for name in ("amount", "currency"):
            value = str(form.get(name, "")).strip()
            if value:
                opportunity[name] = value
        body["opportunity"] = opportunity
    r = await ctx.post(f"/api/v1/customers/{customer_id}/convert", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}?notice=converted")
    return await customer_page(ctx, customer_id, status_code=r.status, message=r.detail)


@router.post("/customers/{customer_id}/assign")
async def assign(customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    form = await check_csrf(request)
    body = {name: (str(form.get(name, "")) or None) for name in ("assignedToId", "teamId")}
    r = await ctx.post(f"/api/v1/customers/{customer_id}/assign", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}?notice=assigned")
    return await customer_page(ctx, customer_id, status_code=r.status, message=r.detail)


async def _find_duplicate(ctx: Console, wanted: str) -> tuple[str | None, str | None]:
    """The customer the user means by a number or an email: (id, None), or (None, why not)."""
    r = await ctx.get("/api/v1/customers", params={"q": wanted, "pageSize": 10})
    if not r.ok:
        return None, r.detail
    exact = [
        c
        for c in r.body["items"]
        if wanted.lower() in ((c.get("customerNumber") or "").lower(), (c.get("email") or "").lower())
    ]
    if len(exact) == 1:
        return exact[0]["id"], None
    return None, "No customer has that customer number or email." if not exact else "Several match."


@router.post("/customers/{customer_id}/merge")
async def merge(customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]) -> Response:
    """Merges a duplicate (named by its number or email) into this customer, with the chosen rules."""
    form = await check_csrf(request)
    wanted = str(form.get("duplicate", "")).strip()
    duplicate_id, why = await _find_duplicate(ctx, wanted)
    if duplicate_id is None:
        return await customer_page(
            ctx, customer_id, status_code=422, message=f"{wanted}: {ctx.translate(why or '')}"
        )
    rules = {}
    for name in (*MERGE_FIELDS, *COMBINABLE):
        rule = str(form.get(f"rule-{name}", "primary"))
        if rule != "primary":
            rules[name] = rule
    r = await ctx.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": customer_id, "secondaryCustomerId": duplicate_id, "mergeRules": rules},
    )
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}?notice=merged")
    return await customer_page(ctx, customer_id, status_code=r.status, message=r.detail)


@router.post("/customers/{customer_id}/tickets")
async def open_ticket(
    customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]
) -> Response:
    form = await check_csrf(request)
    body = {"customerId": customer_id}
    body |= {name: str(form.get(name, "")).strip() for name in ("subject", "description", "type", "priority")}
    r = await ctx.post("/api/v1/tickets", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/tickets/{r.body['id']}")
    return await customer_page(ctx, customer_id, status_code=r.status, message=r.detail, ticket_form=body)


@router.post("/customers/{customer_id}/activities")
async def add_activity(
    customer_id: str, request: Request, ctx: Annotated[Console, Depends(console)]
) -> Response:
    """The start is typed in the user's own time zone and sent to the API with it."""
    form = await check_csrf(request)
    entered = {name: str(form.get(name, "")).strip() for name in ("type", "subject", "description", "start")}
    body: dict[str, Any] = {"customerId": customer_id, "type": entered["type"], "subject": entered["subject"]}
    if entered["description"]:
        body["description"] = entered["description"]
    if form.get("done"):
        body["status"] = "COMPLETED"
    zone = render.zone(await ctx.time_zone())
    try:
        start = datetime.fromisoformat(entered["start"]) if entered["start"] else datetime.now(zone)
    except ValueError:
        return await customer_page(
            ctx, customer_id, status_code=422, message=ctx.translate("The start is not a date and time.")
        )
    body["startDate"] = start.replace(tzinfo=start.tzinfo or zone).isoformat()
    r = await ctx.post("/api/v1/activities", json=body)
    if r.ok:
        return redirect(request, f"{COOKIE_PATH}/customers/{customer_id}?notice=activity")
    return await customer_page(
        ctx, customer_id, status_code=r.status, message=r.detail, activity_form=entered
    )
