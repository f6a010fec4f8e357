"""The customers pipeline-svc knows from customer-svc's events (created, updated, converted, merged).

Events about one customer carry its version as `sequence`; an older version than the one stored is
ignored, so delivery order does not matter. A merge is final: once a customer is marked as merged
into another, later events about it do not undo that.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.models import KnownCustomer
from pipeline_svc.service.common import unprocessable


def _insert(session: AsyncSession):
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return dialect.insert(KnownCustomer)


async def upsert_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    customer_number: str,
    full_name: str,
    status: str,
    version: int,
) -> None:
    """Apply a customer's state as of `version`, unless a newer one is already stored."""
    values = {
        "id": customer_id,
        "customer_number": customer_number,
        "full_name": full_name,
        "status": status,
        "version": version,
        "updated_at": datetime.now(UTC),
    }
    stmt = _insert(session).values(**values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={k: stmt.excluded[k] for k in values if k != "id"},
            where=KnownCustomer.version < stmt.excluded.version,
        )
    )


async def ensure_customer(
    session: AsyncSession, *, customer_id: uuid.UUID, customer_number: str, full_name: str, status: str
) -> None:
    """Know a customer we have only heard of in passing (version 0: any real event overrides it)."""
    stmt = _insert(session).values(
        id=customer_id,
        customer_number=customer_number,
        full_name=full_name,
        status=status,
        version=0,
        updated_at=datetime.now(UTC),
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


async def mark_merged(session: AsyncSession, *, secondary_id: uuid.UUID, primary_id: uuid.UUID) -> None:
    customer = await session.get(KnownCustomer, secondary_id)
    if customer is not None:
        customer.merged_into_id = primary_id
        customer.updated_at = datetime.now(UTC)
        await session.flush()


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> KnownCustomer | None:
    return (
        await session.execute(
            select(KnownCustomer)
            .where(KnownCustomer.id == customer_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def require_customer(session: AsyncSession, customer_id: uuid.UUID, *, field: str) -> KnownCustomer:
    """The customer must exist (as far as customer-svc's events tell) and not be merged away."""
    customer = await get_customer(session, customer_id)
    if customer is None:
        raise unprocessable(
            "UNKNOWN_CUSTOMER",
            f"Customer {customer_id} does not exist.",
            field=field,
            message="unknown customer",
            rule="unknown_customer",
        )
    if customer.merged_into_id is not None:
        raise unprocessable(
            "CUSTOMER_MERGED",
            f"Customer {customer_id} was merged into {customer.merged_into_id}; use that customer.",
            field=field,
            message="merged customer",
            rule="customer_merged",
            mergedIntoId=str(customer.merged_into_id),
        )
    return customer


async def resolve_merged(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """Follow merges to the surviving customer (bounded, in case of a cycle from bad data)."""
    seen = {customer_id}
    current = customer_id
    for _ in range(10):
        customer = await get_customer(session, current)
        if customer is None or customer.merged_into_id is None or customer.merged_into_id in seen:
            return current
        current = customer.merged_into_id
        seen.add(current)
    return current


async def customer_names(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(KnownCustomer.id, KnownCustomer.full_name).where(KnownCustomer.id.in_(wanted))
    )
    return {row.id: row.full_name for row in rows}
