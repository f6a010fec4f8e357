"""HTTP routes of activity-svc."""

import uuid
from datetime import datetime
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.auth import Principal, require
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query

from activity_svc import service
from activity_svc.models import ActivityStatus, ActivityType
from activity_svc.schemas import ActivityPage, ActivityRead

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))
ActivityAccess = Annotated[Principal, Depends(require("activity_access"))]


@router.get("", operation_id="activities_list", summary="List activities", responses=problem_doc(422))
async def list_activities(
    session: SessionDep,
    user: ActivityAccess,
    params: Annotated[PageParams, Depends(page_params)],
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    opportunity_id: Annotated[uuid.UUID | None, Query(alias="opportunityId")] = None,
    ticket_id: Annotated[uuid.UUID | None, Query(alias="ticketId")] = None,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    type: Annotated[list[ActivityType], Query()] = [],
    status: Annotated[list[ActivityStatus], Query()] = [],
    start_from: Annotated[datetime | None, Query(alias="startFrom", description="startDate >= this")] = None,
    start_to: Annotated[datetime | None, Query(alias="startTo", description="startDate < this")] = None,
) -> ActivityPage:
    items, total = await service.list_activities(
        session,
        params=params,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        ticket_id=ticket_id,
        owner_id=owner_id,
        types=type,
        statuses=status,
        start_from=start_from,
        start_to=start_to,
    )
    return ActivityPage(
        items=[ActivityRead.model_validate(a) for a in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )
