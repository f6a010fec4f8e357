"""The caller's own views of activities: the agenda (my work) and the recent-activity feed."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from crm_common.pagination import any_of
from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from activity_svc.api.deps import ActivityAccess, Types
from activity_svc.models import ActivityType
from activity_svc.schemas import ActivityAgenda, ActivityFeed
from activity_svc.service import views

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))
TimeZone = Annotated[
    str | None,
    Query(
        alias="timeZone",
        max_length=64,
        description="IANA time zone, e.g. Europe/Paris; defaults to the caller's (directory), else UTC.",
    ),
]


@router.get(
    "/agenda",
    operation_id="activities_agenda",
    summary="My work: the caller's overdue, today's and upcoming tasks and meetings",
    responses=problem_doc(422),
)
async def agenda(
    session: SessionDep,
    user: ActivityAccess,
    time_zone: TimeZone = None,
    at: Annotated[
        AwareDatetime | None, Query(description="The instant to compute the agenda for; default now.")
    ] = None,
    days: Annotated[int, Query(ge=1, le=90, description="How many days after today are upcoming.")] = 7,
    type: Annotated[list[ActivityType], any_of("Activity types to include; default TASK and MEETING.")] = [],
    limit: Annotated[int, Query(ge=1, le=200, description="Items per bucket (totals count all).")] = 50,
) -> ActivityAgenda:
    zone_name = await views.caller_zone(session, user.id, time_zone)
    return await views.agenda(
        session, user_id=user.id, time_zone=zone_name, at=at, days=days, types=type, limit=limit
    )


@router.get(
    "/feed",
    operation_id="activities_feed",
    summary="Recent activities with customer and owner names (dashboard widget)",
    responses=problem_doc(422),
)
async def feed(
    session: SessionDep,
    user: ActivityAccess,
    time_zone: TimeZone = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    before: Annotated[
        AwareDatetime | None, Query(description="Only activities created before this (next page).")
    ] = None,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    type: Types = [],
    include_system: Annotated[bool, Query(alias="includeSystem")] = True,
    group_by_date: Annotated[
        bool, Query(alias="groupByDate", description="Also group the items by local creation date.")
    ] = False,
) -> ActivityFeed:
    zone_name = await views.caller_zone(session, user.id, time_zone)
    return await views.feed(
        session,
        time_zone=zone_name,
        limit=limit,
        before=before,
        owner_id=owner_id,
        customer_id=customer_id,
        types=type,
        include_system=include_system,
        group_by_date=group_by_date,
        caller=user,
    )
