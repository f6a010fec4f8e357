"""Batch create, update, upsert (by externalId) and read of activities (crm_common.batch runs them
item by item)."""

import uuid
from collections.abc import Sequence

from crm_common.batch import BatchResult, find_by_external_id, run_batch
from crm_common.errors import not_found
from crm_common.record_scope import ScopedCaller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import Activity
from activity_svc.schemas import ActivityBatchUpdate, ActivityCreateRequest, ActivityUpdateRequest
from activity_svc.service.activities import create_activity, in_scope, update_activity
from activity_svc.service.views import present


def _present(session: AsyncSession):
    return lambda activities: present(session, activities)


def _as_update(item, fields) -> ActivityUpdateRequest:
    return ActivityUpdateRequest.model_validate(item.model_dump(mode="json", by_alias=True, include=fields))


async def create_many(
    session: AsyncSession,
    items: Sequence[ActivityCreateRequest],
    *,
    actor_id: uuid.UUID,
    caller: ScopedCaller,
) -> BatchResult:
    async def create(session, item):
        activity, _ = await create_activity(session, data=item, actor_id=actor_id, caller=caller)
        return 201, activity

    return await run_batch(session, items, create, _present(session))


async def update_many(
    session: AsyncSession, items: Sequence[ActivityBatchUpdate], *, actor_id: uuid.UUID, caller: ScopedCaller
) -> BatchResult:
    async def update(session, item):
        data = _as_update(item, item.model_fields_set - {"id"})
        activity, _ = await update_activity(
            session, item.id, data=data, if_match=None, actor_id=actor_id, caller=caller
        )
        return 200, activity

    return await run_batch(session, items, update, _present(session))


async def upsert_many(
    session: AsyncSession,
    items: Sequence[ActivityCreateRequest],
    *,
    actor_id: uuid.UUID,
    caller: ScopedCaller,
) -> BatchResult:
    async def upsert(session, item: ActivityCreateRequest):
        found = await find_by_external_id(session, Activity, item.external_id)
        if found is None:
            activity, _ = await create_activity(session, data=item, actor_id=actor_id, caller=caller)
            return 201, activity
        data = _as_update(item, item.model_fields_set)
        activity, _ = await update_activity(
            session, found, data=data, if_match="*", actor_id=actor_id, caller=caller
        )
        return 200, activity

    return await run_batch(session, items, upsert, _present(session))


async def read_many(session: AsyncSession, ids: Sequence[uuid.UUID], *, caller: ScopedCaller) -> BatchResult:
    """Activities outside the caller's read scope answer 404, like missing ones."""
    query = select(Activity).where(Activity.id.in_(ids), in_scope(caller))
    by_id = {a.id: a for a in (await session.execute(query)).scalars()}

    async def read(session, activity_id):
        if activity_id not in by_id:
            raise not_found("activity", activity_id)
        return 200, by_id[activity_id]

    return await run_batch(session, ids, read, _present(session))
