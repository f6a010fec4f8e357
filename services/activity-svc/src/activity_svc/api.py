"""HTTP routes of activity-svc: translate requests to service calls and back."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.batch import BatchReadRequest
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import etag, if_match_header
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime

from activity_svc.models import ActivityPriority, ActivityStatus, ActivityType
from activity_svc.schemas import (
    ActivityAgenda,
    ActivityBatchCreateRequest,
    ActivityBatchResult,
    ActivityBatchUpdateRequest,
    ActivityCancelRequest,
    ActivityChanges,
    ActivityCompleteRequest,
    ActivityCompletion,
    ActivityCreateRequest,
    ActivityFeed,
    ActivityPage,
    ActivityRead,
    ActivityUpdateRequest,
)
from activity_svc.service import activities, archiving, batch, views

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))
timelines = APIRouter(prefix="/api/v1", tags=["timelines"], responses=problem_doc(401, 403))
# The caller with their record scopes (crm_common.record_scope): activities by owner.
ActivityAccess = Annotated[ScopedCaller, Depends(scoped("activities"))]
# A POST that only reads (batch/read) needs read access, like a GET.
ActivityReader = Annotated[ScopedCaller, Depends(scoped("activities", "read"))]
IfMatch = Annotated[str | None, if_match_header('The ETag you read, e.g. W/"3".')]
TimeZone = Annotated[
    str | None,
    Query(
        alias="timeZone",
        max_length=64,
        description="IANA time zone, e.g. Europe/Paris; defaults to the caller's (directory), else UTC.",
    ),
]
Types = Annotated[list[ActivityType], any_of(alias="type")]


def _with_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


@router.post(
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


@router.get("", operation_id="activities_list", summary="List activities", responses=problem_doc(422))
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


_BATCH = (
    " Up to 100 items; answered 200 with one result per item in order (its own status, the id and the "
    "activity, or a problem): refused items changed nothing, the others are saved. Retry safely with an "
    "`Idempotency-Key`. See docs/api-guide.md, Batches."
)


@router.post(
    "/batch/create",
    operation_id="activities_batch_create",
    summary="Create up to 100 activities",
    description="Each item as in `POST /activities`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_create(
    body: ActivityBatchCreateRequest, session: SessionDep, user: ActivityAccess
) -> ActivityBatchResult:
    return await batch.create_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/update",
    operation_id="activities_batch_update",
    summary="Update up to 100 activities",
    description="Each item: the activity's `id`, the fields to change and the `version` read, as in "
    "`PATCH /activities/{id}`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_update(
    body: ActivityBatchUpdateRequest, session: SessionDep, user: ActivityAccess
) -> ActivityBatchResult:
    return await batch.update_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/upsert",
    operation_id="activities_batch_upsert",
    summary="Create or update up to 100 activities by externalId",
    description="Every item carries `externalId`: an activity holding it has the fields sent updated "
    "(200), else one is created (201)." + _BATCH,
    responses=problem_doc(422),
)
async def batch_upsert(
    body: ActivityBatchCreateRequest, session: SessionDep, user: ActivityAccess
) -> ActivityBatchResult:
    return await batch.upsert_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/read",
    operation_id="activities_batch_read",
    summary="Read up to 100 activities by id",
    description="One result per id, in order: 200 with the activity, or 404." + _BATCH,
    responses=problem_doc(422),
)
async def batch_read(
    body: BatchReadRequest, session: SessionDep, user: ActivityReader
) -> ActivityBatchResult:
    return await batch.read_many(session, body.ids, caller=user)


@router.get(
    "/changes",
    operation_id="activities_changes",
    summary="Changes feed: activities changed or deleted since a cursor",
    description="For mirrors (docs/sync.md): activities as the list answers them, oldest change first, and each one deleted as a tombstone `{id, deleted: true}`. "
    "Start with no cursor; keep `next` for the following call, also when `hasMore` is false.",
    responses=problem_doc(422),
)
async def activity_changes(
    session: SessionDep, user: ActivityAccess, params: Annotated[ChangesParams, Depends(changes_params)]
) -> ActivityChanges:
    return await views.changes_feed(session, params, caller=user)


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


# --- timelines (paths under other contexts' resources; the gateway routes them here) ---------------


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


@timelines.get(
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


@timelines.get(
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


@timelines.get(
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
