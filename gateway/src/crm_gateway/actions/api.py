"""The seed's action API: `POST /api/v1/actions/customer-manager` and `/sales-pipeline` take the seed's
action-handler input (`{action, customerId|opportunityId, stageId, data, options}`) and answer with its
ActionResult (`success`, `data`, `events` | `error: {message, code}`), by calling the REST endpoints
with the caller's token. A team moving off the seed's engine keeps its client code.

The seed asks for `customer_access` / `sales_access`; here the action endpoint needs read access to
its context and each REST call it makes checks the write permission it needs (`forecast` only reads).

HTTP status: 200 on success; on failure the status of the underlying problem (422 for the seed's
validate() errors, 404, 409, 412...), always with the ActionResult body. `error.code` is the seed's
(`CUSTOMER_ACTION_ERROR`, `PIPELINE_ACTION_ERROR`); `error.reason` the service's stable problem code.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from crm_common.auth import Principal, require_access
from crm_common.errors import problem_doc
from crm_common.schemas import ApiModel, RequestModel
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import ConfigDict

from crm_gateway.internal import ServiceClient, ServiceResponse, ServiceUnavailable

router = APIRouter(prefix="/api/v1/actions", tags=["actions"])


class ActionRunRequest(RequestModel):
    """The seed's input; unknown top-level fields are ignored as the seed's engine did."""

    model_config = ConfigDict(extra="allow")
    action: str | None = None
    customer_id: str | None = None
    opportunity_id: str | None = None
    stage_id: str | None = None
    data: dict[str, Any] | None = None
    options: dict[str, Any] | None = None


class ActionError(ApiModel):
    message: str
    code: str
    reason: str | None = None
    errors: list[Any] | None = None


class ActionResult(ApiModel):
    success: bool
    data: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None
    error: ActionError | None = None


class ActionFailed(Exception):
    def __init__(
        self, status: int, message: str, reason: str | None = None, errors: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.errors = status, message, reason, errors


# The seed's messages for the failures it names; other failures carry the service's own detail.
SEED_MESSAGES = {
    "CUSTOMER_EMAIL_EXISTS": "Customer with this email already exists",
    "CUSTOMER_NOT_FOUND": "Customer not found",
    "OPPORTUNITY_NOT_FOUND": "Opportunity not found",
    "STAGE_NOT_FOUND": "Stage not found",
    "CUSTOMER_NOT_CONVERTIBLE": "Only leads can be converted",
}


def _checked(r: ServiceResponse, *, not_found: str | None = None) -> Any:
    if r.status < 400:
        return r.body
    body = r.body if isinstance(r.body, dict) else {}
    reason = body.get("code")
    message = (SEED_MESSAGES.get(reason) if isinstance(reason, str) else None) or (
        not_found if r.status == 404 and not_found else None
    )
    raise ActionFailed(
        r.status, message or body.get("detail") or f"HTTP {r.status}", reason, body.get("errors")
    )


# An action's work: (client, the caller's Authorization, the request, the caller) -> (data, events).
Run = Callable[
    [ServiceClient, str | None, "ActionRunRequest", Principal],
    Awaitable[tuple[dict[str, Any], list[dict[str, Any]]]],
]


def _result(
    code: str, run: Run
) -> Callable[[Request, "ActionRunRequest", Principal], Awaitable[JSONResponse]]:
    async def respond(request: Request, body: ActionRunRequest, principal: Principal) -> JSONResponse:
        client: ServiceClient = request.app.state.service_client
        auth = request.headers.get("authorization")
        try:
            data, events = await run(client, auth, body, principal)
        except ActionFailed as exc:
            err = ActionError(message=exc.message, code=code, reason=exc.reason, errors=exc.errors)
            return JSONResponse(
                ActionResult(success=False, error=err).model_dump(by_alias=True, exclude_none=True),
                status_code=exc.status,
            )
        except ServiceUnavailable as exc:
            err = ActionError(message=f"Service unavailable: {exc}", code=code, reason="SERVICE_UNAVAILABLE")
            return JSONResponse(
                ActionResult(success=False, error=err).model_dump(by_alias=True, exclude_none=True),
                status_code=503,
            )
        return JSONResponse(
            ActionResult(success=True, data=data, events=events).model_dump(by_alias=True, exclude_none=True)
        )

    return respond


def _invalid(errors: list[str]) -> None:
    if errors:
        raise ActionFailed(422, "; ".join(errors), "VALIDATION_ERROR", errors)


# --- customer-manager -----------------------------------------------------------------------------

CUSTOMER_ACTIONS = ("create", "update", "merge", "convert", "assign", "segment")


def validate_customer(i: ActionRunRequest) -> list[str]:
    """The seed's validate(), null-safe (the seed reads `input.data.email` even without data)."""
    errors = []
    data = i.data or {}
    if not i.action:
        errors.append("action is required")
    if i.action == "create" and i.data is None:
        errors.append("data is required for create action")
    if i.action == "create" and not data.get("email"):
        errors.append("email is required for create action")
    if i.action in ("update", "convert", "assign") and not i.customer_id:
        errors.append("customerId is required for this action")
    if i.action == "merge" and (not data.get("primaryCustomerId") or not data.get("secondaryCustomerId")):
        errors.append("both primaryCustomerId and secondaryCustomerId are required for merge action")
    return errors


async def run_customer(
    client: ServiceClient, auth: str | None, i: ActionRunRequest, user: Principal
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _invalid(validate_customer(i))
    data, options = dict(i.data or {}), i.options or {}
    cid = i.customer_id
    path = f"/api/v1/customers/{cid}"
    if i.action == "create":
        c = _checked(
            await client.request("customer", "POST", "/api/v1/customers", json_body=data, authorization=auth)
        )
        return {"customer": c}, [
            {
                "type": "customer.created",
                "data": {
                    "customerId": c["id"],
                    "customerNumber": c.get("customerNumber"),
                    "type": c.get("type"),
                    "createdBy": str(user.id),
                },
            }
        ]
    if i.action == "update":
        # The seed updates without a version: read it first (last writer wins, as in the seed), unless
        # the caller sends `options.version` for a real optimistic check.
        version = options.get("version")
        if version is None:
            version = _checked(
                await client.get("customer", path, authorization=auth), not_found="Customer not found"
            )["version"]
        c = _checked(
            await client.request(
                "customer",
                "PATCH",
                path,
                json_body=data,
                authorization=auth,
                headers={"If-Match": f'W/"{version}"'},
            ),
            not_found="Customer not found",
        )
        return {"customer": c}, [
            {"type": "customer.updated", "data": {"customerId": c["id"], "changes": data}}
        ]
    if i.action == "convert":
        body = {"opportunity": data["opportunity"]} if data.get("opportunity") else {}
        r = _checked(
            await client.request("customer", "POST", path + "/convert", json_body=body, authorization=auth),
            not_found="Customer not found",
        )
        event = {"customerId": r["customer"]["id"], "convertedBy": str(user.id)}
        if r.get("opportunity"):
            event["opportunityId"] = r["opportunity"].get("id")
        return {k: v for k, v in r.items() if v is not None}, [{"type": "customer.converted", "data": event}]
    if i.action == "merge":
        body = {k: data[k] for k in ("primaryCustomerId", "secondaryCustomerId", "mergeRules") if k in data}
        r = _checked(
            await client.request(
                "customer", "POST", "/api/v1/customers/merge", json_body=body, authorization=auth
            ),
            not_found="One or both customers not found",
        )
        return {"customer": r["customer"]}, [
            {
                "type": "customer.merged",
                "data": {
                    "primaryCustomerId": body["primaryCustomerId"],
                    "secondaryCustomerId": body["secondaryCustomerId"],
                    "mergedBy": str(user.id),
                },
            }
        ]
    if i.action == "assign":
        body = {k: data[k] for k in ("assignedToId", "teamId") if k in data}
        c = _checked(
            await client.request("customer", "POST", path + "/assign", json_body=body, authorization=auth),
            not_found="Customer not found",
        )
        return {"customer": c}, [
            {
                "type": "customer.assigned",
                "data": {
                    "customerId": c["id"],
                    "assignedToId": c.get("assignedToId"),
                    "teamId": c.get("teamId"),
                },
            }
        ]
    if i.action == "segment":
        params = {"page": options.get("page", 1), "pageSize": options.get("pageSize", 25)}
        r = _checked(
            await client.request(
                "customer",
                "POST",
                "/api/v1/customers/segments/preview",
                params=params,
                json_body={"filter": data.get("filter", data.get("criteria", {}))},
                authorization=auth,
            )
        )
        return {"customers": r["items"], "total": r["total"]}, []
    raise ActionFailed(422, f"Unknown customer action: {i.action}", "UNKNOWN_ACTION")


# --- sales-pipeline -------------------------------------------------------------------------------

OPPORTUNITY_FIELDS = (
    "title",
    "description",
    "customerId",
    "amount",
    "currency",
    "expectedCloseDate",
    "ownerId",
    "teamId",
    "competitors",
    "customFields",
)


def validate_pipeline(i: ActionRunRequest) -> list[str]:
    errors = []
    if not i.action:
        errors.append("action is required")
    if i.action in ("update_stage", "win", "lose") and not i.opportunity_id:
        errors.append("opportunityId is required for this action")
    if i.action == "update_stage" and not i.stage_id:
        errors.append("stageId is required for update_stage action")
    if i.action == "create_opportunity" and i.data is None:
        errors.append("data is required for create_opportunity action")
    return errors


async def run_pipeline(
    client: ServiceClient, auth: str | None, i: ActionRunRequest, user: Principal
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _invalid(validate_pipeline(i))
    data, options = dict(i.data or {}), i.options or {}
    path = f"/api/v1/opportunities/{i.opportunity_id}"
    if i.action == "create_opportunity":
        body = {k: data[k] for k in OPPORTUNITY_FIELDS if k in data}
        o = _checked(
            await client.request(
                "pipeline", "POST", "/api/v1/opportunities", json_body=body, authorization=auth
            )
        )
        return {"opportunity": o}, [
            {
                "type": "opportunity.created",
                "data": {
                    "opportunityId": o["id"],
                    "customerId": o["customerId"],
                    "amount": o.get("amount"),
                    "currency": o.get("currency"),
                    "stageId": o.get("stageId"),
                    "createdBy": str(user.id),
                },
            }
        ]
    if i.action == "update_stage":
        before = _checked(
            await client.get("pipeline", path, authorization=auth), not_found="Opportunity not found"
        )
        o = _checked(
            await client.request(
                "pipeline", "POST", path + "/stage", json_body={"stageId": i.stage_id}, authorization=auth
            ),
            not_found="Stage not found",
        )
        return {"opportunity": o}, [
            {
                "type": "opportunity.stage_changed",
                "data": {
                    "opportunityId": o["id"],
                    "fromStageId": before.get("stageId"),
                    "toStageId": o.get("stageId"),
                    "changedBy": str(user.id),
                },
            }
        ]
    if i.action == "win":
        r = _checked(
            await client.request("pipeline", "POST", path + "/win", json_body={}, authorization=auth),
            not_found="Opportunity not found",
        )
        o = r["opportunity"]
        return r, [
            {
                "type": "opportunity.won",
                "data": {
                    "opportunityId": o["id"],
                    "customerId": o["customerId"],
                    "amount": o.get("amount"),
                    "currency": o.get("currency"),
                    "wonBy": str(user.id),
                },
            }
        ]
    if i.action == "lose":
        reason = data.get("lostReason") or data.get("reason") or options.get("reason") or "Not specified"
        o = _checked(
            await client.request(
                "pipeline", "POST", path + "/lose", json_body={"lostReason": reason}, authorization=auth
            ),
            not_found="Opportunity not found",
        )
        return {"opportunity": o}, [
            {
                "type": "opportunity.lost",
                "data": {"opportunityId": o["id"], "lostReason": reason, "lostBy": str(user.id)},
            }
        ]
    if i.action == "forecast":
        params = {
            k: v
            for k, v in (
                ("period", data.get("period", options.get("period"))),
                ("ownerId", data.get("ownerId")),
                ("teamId", data.get("teamId")),
            )
            if v
        }
        return {
            "forecast": _checked(
                await client.get(
                    "pipeline", "/api/v1/opportunities/forecast", params=params, authorization=auth
                )
            )
        }, []
    raise ActionFailed(422, f"Unknown pipeline action: {i.action}", "UNKNOWN_ACTION")


_customer = _result("CUSTOMER_ACTION_ERROR", run_customer)
_pipeline = _result("PIPELINE_ACTION_ERROR", run_pipeline)


@router.post(
    "/customer-manager",
    operation_id="actions_customer_manager",
    summary="The seed's customer-manager action (create, update, merge, convert, assign, segment)",
    responses=problem_doc(401, 403) | {422: {"model": ActionResult, "description": "validate() failed"}},
    response_model=ActionResult,
)
async def customer_manager(
    request: Request,
    body: ActionRunRequest,
    user: Annotated[Principal, Depends(require_access("customers", "read"))],
) -> JSONResponse:
    return await _customer(request, body, user)


@router.post(
    "/sales-pipeline",
    operation_id="actions_sales_pipeline",
    summary="The seed's sales-pipeline action (create_opportunity, update_stage, forecast, win, lose)",
    responses=problem_doc(401, 403) | {422: {"model": ActionResult, "description": "validate() failed"}},
    response_model=ActionResult,
)
async def sales_pipeline(
    request: Request,
    body: ActionRunRequest,
    user: Annotated[Principal, Depends(require_access("sales", "read"))],
) -> JSONResponse:
    return await _pipeline(request, body, user)
