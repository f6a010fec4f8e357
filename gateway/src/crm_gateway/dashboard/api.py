"""`GET /api/v1/dashboard`: the seed's CRM dashboard."""

from typing import Annotated

from crm_common.auth import Principal, current_principal
from crm_common.errors import problem_doc
from fastapi import APIRouter, Depends, Request

from crm_gateway.dashboard import service
from crm_gateway.dashboard.schemas import Dashboard

router = APIRouter(prefix="/api/v1", tags=["dashboard"])


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
