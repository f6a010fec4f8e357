"""Activities one by one: create and list, then read, change, delete, move through their statuses,
archive and restore one by its id."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime

from activity_svc.api.deps import ActivityAccess, IfMatch, Types
from activity_svc.models import ActivityPriority, ActivityStatus
from activity_svc.schemas import (
    ActivityCancelRequest,
    ActivityCompleteRequest,
    ActivityCompletion,
    ActivityCreateRequest,
    ActivityPage,
    ActivityRead,
    ActivityUpdateRequest,
)
from activity_svc.service import activities, archiving, views

# Two routers on one prefix: the collection's routes come first and the `/{activity_id}` routes last
# (api/__init__.py), so `/agenda`, `/feed`, `/batch/...` and `/changes` are matched before an id.
collection = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))
router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))


def _with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


@collection.post(
    "",
    status_code=201,
    operation_id="activities_create",
    summary="Create an activity (call, email, meeting, task, note, SMS, demo)",
    responses=problem_doc(422),
)
async def create_activity(
    body: ActivityCreateRequest, session: SessionDep, user: ActivityAccess, response: Response
) -> ActivityRead:
    activity, _ = await activities.create_activity(session, data=body, actor_id=user.id, caller=user)
    response.headers["Location"] = f"/api/v1/activities/{activity.id}"
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@collection.get("", operation_id="activities_list", summary="List activities", responses=problem_doc(422))
async def list_activities(
    session: SessionDep,
    user: ActivityAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    opportunity_id: Annotated[uuid.UUID | None, Query(alias="opportunityId")] = None,
    ticket_id: Annotated[uuid.UUID | None, Query(alias="ticketId")] = None,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    participant_id: Annotated[uuid.UUID | None, Query(alias="participantId")] = None,
    type: Types = [],
    status: Annotated[list[ActivityStatus], any_of()] = [],
    priority: Annotated[list[ActivityPriority], any_of()] = [],
    system: Annotated[bool | None, Query(description="true: system notes only; false: none")] = None,
    start_from: Annotated[
        AwareDatetime | None, Query(alias="startFrom", description="startDate >= this")
    ] = None,
    start_to: Annotated[AwareDatetime | None, Query(alias="startTo", description="startDate < this")] = None,
    follow_up_of_id: Annotated[
        uuid.UUID | None, Query(alias="followUpOfId", description="Follow-up tasks of this activity.")
    ] = None,
    archived: ArchivedParam = "exclude",
) -> ActivityPage:
    query, order = activities.list_query(
        caller=user,
        params=params,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        ticket_id=ticket_id,
        owner_id=owner_id,
        participant_id=participant_id,
        types=type,
        statuses=status,
        priorities=priority,
        system=system,
        start_from=start_from,
        start_to=start_to,
        follow_up_of_id=follow_up_of_id,
        archived=archived,
    )
    items, total = await views.page_of(session, query, order, params)
    return ActivityPage(
        items=items, total=total, page=params.page, pageSize=params.page_size, next=params.next
    )


@router.get(
    "/{activity_id}", operation_id="activities_get", summary="Get an activity", responses=problem_doc(404)
)
async def get_activity(
    activity_id: uuid.UUID, session: SessionDep, user: ActivityAccess, response: Response
) -> ActivityRead:
    activity = await activities.get_activity(session, activity_id, caller=user)
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@router.patch(
    "/{activity_id}",
    operation_id="activities_update",
    summary="Update an activity (If-Match or `version` required)",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_activity(
    activity_id: uuid.UUID,
    body: ActivityUpdateRequest,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity, _ = await activities.update_activity(
        session, activity_id, data=body, if_match=if_match, actor_id=user.id, caller=user
    )
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@router.delete(
    "/{activity_id}",
    status_code=204,
    operation_id="activities_delete",
    summary="Delete an activity (not a system note)",
    responses=problem_doc(404, 409, 412),
)
async def delete_activity(
    activity_id: uuid.UUID, session: SessionDep, user: ActivityAccess, if_match: IfMatch = None
) -> Response:
    await activities.delete_activity(session, activity_id, if_match=if_match, caller=user)
    return Response(status_code=204)


@router.post(
    "/{activity_id}/start",
    operation_id="activities_start",
    summary="Start an activity (PLANNED -> IN_PROGRESS)",
    responses=problem_doc(404, 409, 412),
)
async def start_activity(
    activity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity = await activities.start_activity(session, activity_id, if_match=if_match, caller=user)
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@router.post(
    "/{activity_id}/complete",
    operation_id="activities_complete",
    summary="Complete an activity with its outcome; a followUpDate creates a follow-up TASK",
    responses=problem_doc(404, 409, 412, 422),
)
async def complete_activity(
    activity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    body: ActivityCompleteRequest | None = None,
    if_match: IfMatch = None,
) -> ActivityCompletion:
    activity, follow_up = await activities.complete_activity(
        session, activity_id, data=body or ActivityCompleteRequest(), if_match=if_match, caller=user
    )
    _with_etag(response, activity.version)
    shown = await views.present(session, [activity, *([follow_up] if follow_up else [])])
    return ActivityCompletion(activity=shown[0], follow_up=shown[1] if follow_up else None)


@router.post(
    "/{activity_id}/cancel",
    operation_id="activities_cancel",
    summary="Cancel an open activity",
    responses=problem_doc(404, 409, 412, 422),
)
async def cancel_activity(
    activity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    body: ActivityCancelRequest | None = None,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity = await activities.cancel_activity(
        session, activity_id, data=body or ActivityCancelRequest(), if_match=if_match, caller=user
    )
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@router.post(
    "/{activity_id}/archive",
    operation_id="activities_archive",
    summary="Archive an activity",
    description=archive_description("lists, timelines, the agenda and the feed", "activity.purged")
    + " System notes cannot be archived (409 `SYSTEM_ACTIVITY_READ_ONLY`).",
    responses=problem_doc(404, 409, 412),
)
async def archive_activity(
    activity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity = await archiving.set_archived(
        session, activity_id, archived=True, if_match=if_match, caller=user
    )
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)


@router.post(
    "/{activity_id}/restore",
    operation_id="activities_restore",
    summary="Restore an archived activity",
    description=RESTORE_DESCRIPTION,
    responses=problem_doc(404, 409, 412),
)
async def restore_activity(
    activity_id: uuid.UUID,
    session: SessionDep,
    user: ActivityAccess,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityRead:
    activity = await archiving.set_archived(
        session, activity_id, archived=False, if_match=if_match, caller=user
    )
    _with_etag(response, activity.version)
    return await views.present_one(session, activity)
