"""Batch create, update, upsert and read of customers (crm_common.batch runs them item by item)."""

import uuid
from collections.abc import Sequence

from crm_common.batch import BatchResult, missing_key, run_batch
from crm_common.errors import not_found
from crm_common.record_scope import ScopedCaller
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from customer_svc.models import Customer
from customer_svc.schemas import CustomerBatchUpdate, CustomerCreateRequest, CustomerUpdateRequest
from customer_svc.service.customers import create_customer, to_read, update_customer
from customer_svc.service.query import in_scope

# Fields a create may set that an update by upsert leaves alone (assignment has its own action).
_NOT_UPDATED_BY_UPSERT = {"assigned_to_id", "team_id"}


def _present(session: AsyncSession):
    return lambda customers: to_read(session, customers)


async def create_many(
    session: AsyncSession, items: Sequence[CustomerCreateRequest], *, caller: ScopedCaller
) -> BatchResult:
    async def create(session, item):
        return 201, await create_customer(session, data=item, caller=caller)

    return await run_batch(session, items, create, _present(session))


async def update_many(
    session: AsyncSession, items: Sequence[CustomerBatchUpdate], *, caller: ScopedCaller
) -> BatchResult:
    async def update(session, item):
        data = CustomerUpdateRequest.model_validate(
            item.model_dump(mode="json", by_alias=True, include=item.model_fields_set - {"id"})
        )
        return 200, await update_customer(
            session, customer_id=item.id, data=data, if_match=None, caller=caller
        )

    return await run_batch(session, items, update, _present(session))


async def upsert_many(
    session: AsyncSession, items: Sequence[CustomerCreateRequest], *, id_property: str, caller: ScopedCaller
) -> BatchResult:
    """A customer outside the caller's read scope is not found (the create that follows meets the
    unique email or externalId, as a plain create would); one outside the write scope is a 403."""

    async def upsert(session, item: CustomerCreateRequest):
        if id_property == "externalId":
            if item.external_id is None:
                raise missing_key("externalId")
            condition = Customer.external_id == item.external_id
        else:
            condition = func.lower(Customer.email) == item.email.lower()
        found = (
            await session.execute(
                select(Customer.id)
                .where(condition, Customer.merged_into_id.is_(None), in_scope(caller))
                .limit(1)
            )
        ).scalar_one_or_none()
        if found is None:
            return 201, await create_customer(session, data=item, caller=caller)
        sent = item.model_fields_set - _NOT_UPDATED_BY_UPSERT
        data = CustomerUpdateRequest.model_validate(item.model_dump(mode="json", by_alias=True, include=sent))
        # An upsert updates whatever version it finds (If-Match: *), as an import does.
        return 200, await update_customer(session, customer_id=found, data=data, if_match="*", caller=caller)

    return await run_batch(session, items, upsert, _present(session))


async def read_many(session: AsyncSession, ids: Sequence[uuid.UUID], *, caller: ScopedCaller) -> BatchResult:
    """Customers outside the caller's read scope answer 404, like missing ones."""
    rows = (
        await session.execute(
            select(Customer)
            .where(Customer.id.in_(ids), in_scope(caller))
            .options(selectinload(Customer.addresses))
        )
    ).scalars()
    by_id = {c.id: c for c in rows}

    async def read(session, customer_id):
        if customer_id not in by_id:
            raise not_found("customer", customer_id)
        return 200, by_id[customer_id]

    return await run_batch(session, ids, read, _present(session))
