"""The changes feed of activities, for mirrors (docs/sync.md)."""

from typing import Annotated

from crm_common.app import SessionDep
from crm_common.changes import ChangesParams, changes_params
from crm_common.errors import problem_doc
from fastapi import APIRouter, Depends

from activity_svc.api.deps import ActivityAccess
from activity_svc.schemas import ActivityChanges
from activity_svc.service import views

router = APIRouter(prefix="/api/v1/activities", tags=["activities"], responses=problem_doc(401, 403))


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
