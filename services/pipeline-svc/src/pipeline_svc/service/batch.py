"""Batch create, update, upsert (by externalId) and read of opportunities (crm_common.batch runs them
item by item)."""

import uuid
from collections.abc import Sequence

from crm_common.batch import BatchResult, find_by_external_id, run_batch
from crm_common.errors import not_found
from crm_common.record_scope import ScopedCaller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from pipeline_svc.models import Opportunity, OpportunityProduct
from pipeline_svc.schemas import OpportunityBatchUpdate, OpportunityCreateRequest, OpportunityUpdateRequest
from pipeline_svc.service.opportunities import create_opportunity, in_scope, update_opportunity, views


def _present(session: AsyncSession):
    return lambda opportunities: views(session, opportunities)


def _as_update(item, fields) -> OpportunityUpdateRequest:
    return OpportunityUpdateRequest.model_validate(
        item.model_dump(mode="json", by_alias=True, include=fields)
    )


async def create_many(
    session: AsyncSession,
    items: Sequence[OpportunityCreateRequest],
    *,
    actor_id: uuid.UUID,
    caller: ScopedCaller,
) -> BatchResult:
    async def create(session, item):
        return 201, await create_opportunity(session, data=item, actor_id=actor_id, caller=caller)

    return await run_batch(session, items, create, _present(session))


async def update_many(
    session: AsyncSession,
    items: Sequence[OpportunityBatchUpdate],
    *,
    actor_id: uuid.UUID,
    caller: ScopedCaller,
) -> BatchResult:
    async def update(session, item):
        data = _as_update(item, item.model_fields_set - {"id"})
        return 200, await update_opportunity(
            session, opportunity_id=item.id, data=data, if_match=None, actor_id=actor_id, caller=caller
        )

    return await run_batch(session, items, update, _present(session))


async def upsert_many(
    session: AsyncSession,
    items: Sequence[OpportunityCreateRequest],
    *,
    actor_id: uuid.UUID,
    caller: ScopedCaller,
) -> BatchResult:
    async def upsert(session, item: OpportunityCreateRequest):
        found = await find_by_external_id(session, Opportunity, item.external_id)
        if found is None:
            return 201, await create_opportunity(session, data=item, actor_id=actor_id, caller=caller)
        # The customer of an opportunity does not change by upsert (a merge moves it).
        data = _as_update(item, item.model_fields_set - {"customer_id"})
        return 200, await update_opportunity(
            session, opportunity_id=found, data=data, if_match="*", actor_id=actor_id, caller=caller
        )

    return await run_batch(session, items, upsert, _present(session))


async def read_many(session: AsyncSession, ids: Sequence[uuid.UUID], *, caller: ScopedCaller) -> BatchResult:
    """Opportunities outside the caller's read scope answer 404, like missing ones (so do updates of
    them; one readable but outside the write scope is a 403)."""
    rows = await session.execute(
        select(Opportunity)
        .where(Opportunity.id.in_(ids), in_scope(caller))
        .options(selectinload(Opportunity.line_items).selectinload(OpportunityProduct.product))
    )
    by_id = {o.id: o for o in rows.scalars()}

    async def read(session, opportunity_id):
        if opportunity_id not in by_id:
            raise not_found("opportunity", opportunity_id)
        return 200, by_id[opportunity_id]

    return await run_batch(session, ids, read, _present(session))
