"""The seed's CRM dashboard, composed concurrently from the services' own endpoints.

Each widget has a time budget; a widget whose service is slow, down or refuses the caller is
marked `unavailable` (or `forbidden`) with a reason, and the dashboard still answers 200.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import BaseModel

from crm_gateway.dashboard import schemas
from crm_gateway.internal import ServiceClient, ServiceResponse, ServiceUnavailable

log = logging.getLogger("crm.gateway.dashboard")
CENTS = Decimal("0.01")


class WidgetRefused(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _ok(r: ServiceResponse) -> Any:
    if r.status >= 400:
        raise WidgetRefused(r.status, r.body)
    return r.body


async def _widget(
    name: str, fetch: Callable[[], Awaitable[Any]], budget: float, model: type[BaseModel] | None = None
) -> dict[str, Any]:
    # asyncio.wait, not wait_for: on timeout the widget answers at once and its call is cancelled
    # in the background (wait_for would wait for the cancellation to finish).
    task = asyncio.ensure_future(fetch())
    done, _ = await asyncio.wait({task}, timeout=budget)
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        return {"status": "unavailable", "reason": f"no answer within {budget:.2g} s", "data": None}
    try:
        data = task.result()
        if model is not None:
            # A service answering in a shape the gateway does not know makes one widget unavailable,
            # not the dashboard a 500.
            data = model.model_validate(data).model_dump(mode="json", by_alias=True)
    except ServiceUnavailable as exc:
        return {"status": "unavailable", "reason": str(exc), "data": None}
    except WidgetRefused as exc:
        if exc.status in (401, 403):
            return {
                "status": "forbidden",
                "reason": "the caller lacks the permission for this widget",
                "data": None,
            }
        return {"status": "unavailable", "reason": f"the service answered {exc.status}", "data": None}
    except Exception as exc:  # a widget never breaks the dashboard
        log.exception("dashboard widget %s failed", name)
        return {"status": "unavailable", "reason": type(exc).__name__, "data": None}
    return {"status": "ok", "data": data}


def _money(value: Decimal) -> str:
    return str(value.quantize(CENTS, rounding=ROUND_HALF_UP))


def funnel_from_board(board: dict[str, Any]) -> dict[str, Any]:
    """Per stage: count, amount and weighted amount (amount x stage probability), per currency."""
    stages = []
    for column in board["columns"]:
        totals = []
        for t in column["summary"]["totals"]:
            amount = Decimal(t["totalAmount"])
            totals.append(
                {
                    "currency": t["currency"],
                    "count": t["count"],
                    "amount": _money(amount),
                    "weightedAmount": _money(amount * column["probability"] / 100),
                }
            )
        stages.append(
            {
                "stageId": column["stageId"],
                "label": column["label"],
                "color": column.get("color"),
                "probability": column["probability"],
                "isWon": column["isWon"],
                "isLost": column["isLost"],
                "count": column["summary"]["count"],
                "totals": totals,
            }
        )
    return {"stages": stages}


def _sales_from_board(board: dict[str, Any]) -> dict[str, Any]:
    revenue: dict[str, Decimal] = {}
    open_count = 0
    for column in board["columns"]:
        if column["isWon"]:
            for t in column["summary"]["totals"]:
                revenue[t["currency"]] = revenue.get(t["currency"], Decimal(0)) + Decimal(t["totalAmount"])
        elif not column["isLost"]:
            open_count += column["summary"]["count"]
    return {
        "totalRevenue": [{"currency": c, "amount": _money(a)} for c, a in sorted(revenue.items())],
        "openOpportunities": open_count,
    }


async def build(client: ServiceClient, *, authorization: str | None, budget: float) -> dict[str, Any]:
    auth = {"authorization": authorization}
    board_task: asyncio.Task[ServiceResponse] | None = None

    def board() -> Awaitable[ServiceResponse]:
        nonlocal board_task
        if board_task is None:  # one board call feeds two widgets
            board_task = asyncio.ensure_future(
                client.get("pipeline", "/api/v1/opportunities/board", params={"cardsPerColumn": 1}, **auth)
            )
        return board_task

    async def count(status: str) -> int:
        r = _ok(
            await client.get(
                "customer", "/api/v1/customers", params={"status": status, "pageSize": 1}, **auth
            )
        )
        total: int = r["total"]
        return total

    async def conversion() -> dict[str, Any]:
        leads, prospects, customers = await asyncio.gather(
            count("LEAD"), count("PROSPECT"), count("CUSTOMER")
        )
        pool = leads + prospects + customers
        rate = (
            (Decimal(customers) * 100 / pool).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            if pool
            else None
        )
        return {
            "leads": leads,
            "prospects": prospects,
            "customers": customers,
            "conversionRate": None if rate is None else str(rate),
        }

    async def sales_metrics() -> dict[str, Any]:
        pipeline, conv = await asyncio.gather(
            # Its parts get most of the budget, so the widget can still answer with what it has.
            _widget("salesMetrics.pipeline", lambda: _board_json(board()), budget * 0.9),
            _widget("salesMetrics.conversion", conversion, budget * 0.9),
        )
        if pipeline["status"] != "ok" and conv["status"] != "ok":
            raise ServiceUnavailable(f"{pipeline['reason']}; {conv['reason']}")
        data: dict[str, Any] = {"totalRevenue": None, "openOpportunities": None, "conversionRate": None}
        missing = []
        if pipeline["status"] == "ok":
            data |= _sales_from_board(pipeline["data"])
        else:
            missing += ["totalRevenue", "openOpportunities"]
        if conv["status"] == "ok":
            data["conversionRate"] = conv["data"]["conversionRate"]
            data["conversion"] = conv["data"]
        else:
            missing.append("conversionRate")
        data["unavailable"] = missing
        return data

    async def funnel() -> dict[str, Any]:
        return funnel_from_board(await _board_json(board()))

    async def recent() -> dict[str, Any]:
        body = _ok(await client.get("activity", "/api/v1/activities/feed", params={"limit": 10}, **auth))
        return {"items": body["items"], "timeZone": body.get("timeZone")}

    async def top_customers() -> dict[str, Any]:
        # One ranking per currency: lifetime values in different currencies are not comparable.
        body = _ok(
            await client.get(
                "customer",
                "/api/v1/customers/ranking",
                params={"measure": "lifetimeValue", "limit": 5, "status": "CUSTOMER"},
                **auth,
            )
        )
        return {
            "currencies": [
                {
                    "currency": group["currency"],
                    "items": [
                        {
                            "id": item["customer"]["id"],
                            "customerNumber": item["customer"]["customerNumber"],
                            "fullName": item["customer"]["fullName"],
                            "lifetimeValue": item["value"],
                            "assignedToId": item["customer"]["assignedToId"],
                            "assignedToName": item["customer"]["assignedToName"],
                            "lastContactDate": item["customer"]["lastContactDate"],
                        }
                        for item in group["items"]
                    ],
                }
                for group in body["currencies"]
            ]
        }

    names = ("salesMetrics", "pipelineFunnel", "recentActivities", "topCustomers")
    results = await asyncio.gather(
        _widget("salesMetrics", sales_metrics, budget, schemas.SalesMetrics),
        _widget("pipelineFunnel", funnel, budget, schemas.PipelineFunnel),
        _widget("recentActivities", recent, budget, schemas.RecentActivities),
        _widget("topCustomers", top_customers, budget, schemas.TopCustomers),
    )
    if board_task is not None and not board_task.done():
        board_task.cancel()
    widgets = dict(zip(names, results, strict=True))
    sales = widgets["salesMetrics"]
    if sales["status"] == "ok" and sales["data"]["unavailable"]:
        sales["status"] = "partial"
    return {"generatedAt": datetime.now(UTC).isoformat(), "widgets": widgets}


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def _board_json(pending: Awaitable[ServiceResponse]) -> dict[str, Any]:
    # shield: the shared board call outlives one waiter's timeout so the other can still use it
    board: dict[str, Any] = _ok(await asyncio.shield(pending))
    return board
