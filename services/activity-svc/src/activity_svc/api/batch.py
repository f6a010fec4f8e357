"""Batches of activities: create, update, upsert by externalId and read, up to 100 at a time."""

from crm_common.app import SessionDep
from crm_common.batch import BatchReadRequest
from crm_common.errors import problem_doc
from fastapi import APIRouter

from activity_svc.api.deps import ActivityAccess, ActivityReader
from activity_svc.schemas import ActivityBatchCreateRequest, ActivityBatchResult, ActivityBatchUpdateRequest
from activity_svc.service import batch

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))


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
