"""The seed's view definitions (`crm-dashboard`, `customer-list`, `sales-pipeline`) and their data.

The definitions are the seed's, converted once to JSON (seed_views.json); their data comes from the
services' list, board and dashboard endpoints, called with the caller's token.
"""

import json
from pathlib import Path
from typing import Annotated, Any

from crm_common.auth import Principal, current_principal
from crm_common.errors import ProblemError, problem_doc
from crm_common.pagination import MAX_FILTER_IDS, MAX_PAGE_SIZE, PageNumber, any_of
from crm_common.schemas import ApiModel
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, RootModel
from pydantic_core import to_json

from crm_gateway.dashboard import service as dashboard
from crm_gateway.internal import ServiceClient, ServiceUnavailable
from crm_gateway.views.labels import localized, preferred_language

VIEWS: dict[str, dict[str, Any]] = {
    v["id"]: v for v in json.loads((Path(__file__).parent / "seed_views.json").read_text(encoding="utf-8"))
}

router = APIRouter(prefix="/api/v1/views", tags=["views"])
Caller = Annotated[Principal, Depends(current_principal)]

# customer-list columns -> the customer read model's fields
CUSTOMER_COLUMNS = {
    "customerNumber": "customerNumber",
    "fullName": "fullName",
    "type": "type",
    "status": "status",
    "email": "email",
    "assignedTo.name": "assignedToName",
    "totalValue": "totalValue",
    "lastContactDate": "lastContactDate",
    "createdAt": "createdAt",
}


# Named schemas, so generated SDKs get classes called View and ViewData rather than ones named after
# the operation.
class ViewSummary(ApiModel):
    id: str
    name: str
    display_name: str
    type: str = Field(description="`dashboard`, `table` or `kanban`.")
    entity_type: str | None = None


class View(ViewSummary):
    config: dict[str, Any] = Field(
        description="The seed's definition: layout, widgets, columns, filters, actions, card fields."
    )


class ViewData(RootModel[dict[str, Any]]):
    """`{view, ...}`: the shape depends on the view (see the operation's description)."""


def _language(request: Request, response: Response) -> str:
    """English unless the caller prefers the seed's Chinese (`Accept-Language: zh`)."""
    language = preferred_language(request.headers.get("accept-language"))
    response.headers["Content-Language"] = language
    response.headers["Vary"] = "Accept-Language"
    return language


def _view(view_id: str) -> dict[str, Any]:
    view = VIEWS.get(view_id)
    if view is None:
        raise ProblemError(404, "VIEW_NOT_FOUND", f"There is no view {view_id}; see GET /api/v1/views.")
    return view


@router.get(
    "", operation_id="views_list", summary="The views a front end can render", responses=problem_doc(401)
)
async def list_views(request: Request, response: Response, _: Caller) -> list[ViewSummary]:
    language = _language(request, response)
    return [ViewSummary.model_validate(localized(v, language)) for v in VIEWS.values()]


@router.get(
    "/{view_id}",
    operation_id="views_get",
    summary="A view definition: layout, widgets, columns, filters, actions, card fields",
    responses=problem_doc(401, 404),
)
async def get_view(view_id: str, request: Request, response: Response, _: Caller) -> View:
    return View.model_validate(localized(_view(view_id), _language(request, response)))


def _plain_json(body: dict[str, Any]) -> Response:
    """A body built from the services' JSON (plain str, int, float, None, lists and dicts) sent as it
    is: FastAPI would otherwise walk it value by value first (jsonable_encoder; ~9% of a kanban's CPU)."""
    return Response(to_json(body), media_type="application/json")


def _passthrough(status: int, body: Any) -> JSONResponse:
    """A service's 4xx (its problem document) goes back to the caller as it is."""
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


@router.get(
    "/{view_id}/data",
    operation_id="views_data",
    summary="The rows, cards or widgets of a view",
    description="`customer-list`: `page`, `pageSize`, `sort` (default `-createdAt`), `q`, `status`, `type`, "
    "`assignedTo` (repeatable) -> `{items, total, page, pageSize}` with one entry per column (and "
    "`totalExact: false` when a search matched more than 1,000: `total` is then a lower bound). "
    "`sales-pipeline`: `ownerId`, `teamId`, `customerId`, `cardsPerColumn` -> columns per stage with cards "
    "and per-currency summaries (count, totalAmount, avgAmount). `crm-dashboard`: the dashboard's widgets.",
    # Documented only: the body is built as plain JSON and sent as it is.
    responses={200: {"model": ViewData}, **problem_doc(401, 403, 404, 422, 503)},
    response_model=None,
)
async def view_data(
    view_id: str,
    request: Request,
    _: Caller,
    page: PageNumber = 1,
    page_size: Annotated[int | None, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE)] = None,
    sort: str | None = None,
    q: str | None = None,
    status: Annotated[list[str], any_of()] = [],
    type: Annotated[list[str], any_of()] = [],
    assigned_to: Annotated[list[str], any_of(alias="assignedTo", max_items=MAX_FILTER_IDS)] = [],
    owner_id: Annotated[str | None, Query(alias="ownerId")] = None,
    team_id: Annotated[str | None, Query(alias="teamId")] = None,
    customer_id: Annotated[str | None, Query(alias="customerId")] = None,
    cards_per_column: Annotated[int, Query(alias="cardsPerColumn", ge=1, le=200)] = 50,
) -> dict[str, Any] | Response:
    view = _view(view_id)
    client: ServiceClient = request.app.state.service_client
    auth = request.headers.get("authorization")
    settings = request.app.state.settings
    try:
        if view_id == "crm-dashboard":
            body = await dashboard.build(
                client, authorization=auth, budget=settings.dashboard_widget_timeout_seconds
            )
            return {"view": view_id, **body}
        if view_id == "customer-list":
            default_sort = ",".join(
                ("-" if s["direction"] == "desc" else "") + s["field"] for s in view["config"]["defaultSort"]
            )
            params: list[tuple[str, Any]] = [
                ("page", page),
                ("pageSize", page_size or view["config"].get("pageSize", 25)),
                ("sort", sort or default_sort),
            ]
            if q:
                params.append(("q", q))
            params += [("status", s) for s in status] + [("type", t) for t in type]
            params += [("assignedToId", a) for a in assigned_to]
            r = await client.get("customer", "/api/v1/customers", params=params, authorization=auth)
            if r.status >= 400:
                return _passthrough(r.status, r.body)
            rows = [
                {
                    "id": c["id"],
                    **{col: c.get(field) for col, field in CUSTOMER_COLUMNS.items()},
                    "valueCurrency": c.get("valueCurrency"),
                }
                for c in r.body["items"]
            ]
            return _plain_json(
                {
                    "view": view_id,
                    "items": rows,
                    "total": r.body["total"],
                    # Only when a search's count stopped at its limit, as the customer list says it.
                    **({"totalExact": False} if r.body.get("totalExact") is False else {}),
                    "page": r.body["page"],
                    "pageSize": r.body["pageSize"],
                }
            )
        # sales-pipeline
        board_params: dict[str, Any] = {"cardsPerColumn": cards_per_column}
        for name, value in (("ownerId", owner_id), ("teamId", team_id), ("customerId", customer_id)):
            if value:
                board_params[name] = value
        r = await client.get(
            "pipeline", "/api/v1/opportunities/board", params=board_params, authorization=auth
        )
        if r.status >= 400:
            return _passthrough(r.status, r.body)
        columns = [
            {
                "stageId": col["stageId"],
                "label": col["label"],
                "color": col.get("color"),
                "sortOrder": col["sortOrder"],
                "summary": col["summary"],
                "hasMore": col["hasMore"],
                "requirements": col.get("requirements", []),
                "cards": [
                    {
                        "id": card["id"],
                        "title": card["title"],
                        "customer.fullName": card.get("customerName"),
                        "amount": card["amount"],
                        "currency": card["currency"],
                        "probability": card["probability"],
                        "expectedCloseDate": card.get("expectedCloseDate"),
                        "owner.name": card.get("ownerName"),
                        "customerId": card["customerId"],
                        "ownerId": card["ownerId"],
                    }
                    for card in col["cards"]
                ],
            }
            for col in r.body["columns"]
        ]
        return _plain_json({"view": view_id, "columns": columns})
    except ServiceUnavailable as exc:
        raise ProblemError(
            503, "SERVICE_UNAVAILABLE", f"The data of this view is not reachable: {exc}."
        ) from None
