"""The customers ticket-svc knows, kept from customer-svc's events.

Events may arrive in any order and more than once: an upsert applies a customer's data only when
its version (the event's `sequence`) is not older than the one stored; a merge is remembered on the
secondary customer whatever arrives before or after it, and merge chains (A into B, B into C) are
followed to the customer that survives.
"""

import uuid
from datetime import datetime

from crm_common.errors import FieldError, ProblemError
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import KnownCustomer, Ticket

MAX_MERGE_HOPS = 32


def _insert(session: AsyncSession):
    return (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert


async def upsert_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    customer_number: str,
    full_name: str,
    priority: str | None,
    version: int,
    at: datetime,
) -> None:
    values = {
        "id": customer_id,
        "customer_number": customer_number,
        "full_name": full_name,
        "priority": priority,
        "version": version,
        "updated_at": at,
    }
    stmt = _insert(session)(KnownCustomer).values(**values)
    changes = {k: stmt.excluded[k] for k in ("customer_number", "full_name", "version", "updated_at")}
    if priority is not None:
        changes["priority"] = stmt.excluded.priority
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_=changes, where=KnownCustomer.version <= stmt.excluded.version
        )
    )


async def _ensure(session: AsyncSession, customer_id: uuid.UUID, number: str, name: str, at: datetime):
    stmt = _insert(session)(KnownCustomer).values(
        id=customer_id, customer_number=number, full_name=name, version=0, updated_at=at
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


async def surviving_id(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """Follow merges from `customer_id` to the customer that was not merged away."""
    current = customer_id
    for _ in range(MAX_MERGE_HOPS):
        merged_into = (
            await session.execute(select(KnownCustomer.merged_into_id).where(KnownCustomer.id == current))
        ).scalar_one_or_none()
        if merged_into is None or merged_into == current:
            return current
        current = merged_into
    return current


async def merge(
    session: AsyncSession,
    *,
    primary_id: uuid.UUID,
    primary_number: str,
    primary_name: str,
    secondary_id: uuid.UUID,
    secondary_number: str,
    secondary_name: str,
    at: datetime,
) -> int:
    """Remember the merge and re-point the secondary's tickets (and customers merged into it
    earlier) to the surviving customer. Returns how many tickets moved."""
    if primary_id == secondary_id:
        return 0
    await _ensure(session, primary_id, primary_number, primary_name, at)
    await _ensure(session, secondary_id, secondary_number, secondary_name, at)
    target = await surviving_id(session, primary_id)
    if target == secondary_id:  # a cycle (B into A after A into B): keep the newest word
        target = primary_id
        await session.execute(
            update(KnownCustomer).where(KnownCustomer.id == primary_id).values(merged_into_id=None)
        )
    await session.execute(
        update(KnownCustomer)
        .where((KnownCustomer.id == secondary_id) | (KnownCustomer.merged_into_id == secondary_id))
        .values(merged_into_id=target, updated_at=at)
    )
    moved = await session.execute(
        update(Ticket)
        .where(Ticket.customer_id == secondary_id)
        .values(customer_id=target, version=Ticket.version + 1, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount or 0


async def require_customer(session: AsyncSession, customer_id: uuid.UUID, *, field: str) -> KnownCustomer:
    """The customer a ticket is for: must be known; a merged customer gives the one it was merged into."""
    customer = await session.get(KnownCustomer, customer_id)
    if customer is not None and customer.merged_into_id is not None:
        customer = await session.get(KnownCustomer, await surviving_id(session, customer_id))
    if customer is None:
        raise ProblemError(
            422,
            "UNKNOWN_CUSTOMER",
            f"Customer {customer_id} does not exist (or ticket-svc has not heard of it yet).",
            errors=[FieldError(field=field, message="unknown customer", code="unknown_customer")],
        )
    return customer


async def customers_by_id(session: AsyncSession, ids) -> dict[uuid.UUID, KnownCustomer]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = (await session.execute(select(KnownCustomer).where(KnownCustomer.id.in_(wanted)))).scalars()
    return {c.id: c for c in rows}
