"""`GET /api/v1/dashboard`: the seed's CRM dashboard."""

from typing import Annotated, Any

from crm_common.auth import Principal, current_principal
from crm_common.errors import problem_doc
from crm_common.schemas import ApiModel
from fastapi import APIRouter, Depends, Request
from pydantic import Field

from crm_gateway.dashboard import service

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


class Widget(ApiModel):
    status: str = Field(description="`ok`, `partial`, `unavailable` (service slow or down) or `forbidden`.")
    reason: str | None = None
    data: Any = None


class DashboardWidgets(ApiModel):
    sales_metrics: Widget
    pipeline_funnel: Widget
    recent_activities: Widget
    top_customers: Widget


class Dashboard(ApiModel):
    generated_at: str
    widgets: DashboardWidgets


@router.get(
    "/dashboard",
    operation_id="dashboard_get",
    summary="The CRM dashboard: sales metrics, pipeline funnel, recent activities, top customers",
    description="Composed concurrently from the services with the caller's token. Each widget has a time "
    "budget (`CRM_GATEWAY_DASHBOARD_WIDGET_TIMEOUT_SECONDS`); a widget whose service is slow or down is "
    "`unavailable` and one the caller may not see is `forbidden`, never an error. Money is per currency.",
    responses=problem_doc(401),
)
async def dashboard(request: Request, _: Annotated[Principal, Depends(current_principal)]) -> Dashboard:
    settings = request.app.state.settings
    body = await service.build(
        request.app.state.service_client,
        authorization=request.headers.get("authorization"),
        budget=settings.dashboard_widget_timeout_seconds,
    )
    return Dashboard.model_validate(body)
