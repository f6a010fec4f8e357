"""Timelines: paths under other contexts' resources (customers, opportunities, tickets) that the
gateway routes here."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, sync_page_params
from fastapi import APIRouter, Depends, Query

from activity_svc.api.deps import ActivityAccess, Types
from activity_svc.schemas import ActivityPage
from activity_svc.service import views

router = APIRouter(prefix="/api/v1", tags=["timelines"], responses=problem_doc(401, 403))


async def _timeline_page(session, caller, params: PageParams, types, system, **owner) -> ActivityPage:
    items, total = await views.timeline(
        session, params=params, types=types, system=system, caller=caller, **owner
    )
    return ActivityPage(
        items=items, total=total, page=params.page, pageSize=params.page_size, next=params.next
    )


SystemFilter = Annotated[
    bool | None, Query(description="true: system notes only; false: user activities only")
]


@router.get(
    "/customers/{customer_id}/timeline",
    operation_id="customers_timeline",
    summary="A customer's timeline: activities and system notes, newest first",
    responses=problem_doc(422),
)
async def customer_timeline(
    customer_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    type: Types = [],
    system: SystemFilter = None,
) -> ActivityPage:
    return await _timeline_page(session, user, params, type, system, customer_id=customer_id)


@router.get(
    "/opportunities/{opportunity_id}/timeline",
    operation_id="opportunities_timeline",
    summary="An opportunity's timeline: activities and system notes, newest first",
    responses=problem_doc(422),
)
async def opportunity_timeline(
    opportunity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    type: Types = [],
    system: SystemFilter = None,
) -> ActivityPage:
    return await _timeline_page(session, user, params, type, system, opportunity_id=opportunity_id)


@router.get(
    "/tickets/{ticket_id}/timeline",
    operation_id="tickets_timeline",
    summary="A ticket's timeline: activities and system notes, newest first",
    responses=problem_doc(422),
)
async def ticket_timeline(
    ticket_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    type: Types = [],
    system: SystemFilter = None,
) -> ActivityPage:
    return await _timeline_page(session, user, params, type, system, ticket_id=ticket_id)
