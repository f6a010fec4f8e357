"""Small helpers shared by the service modules."""

import uuid
from collections.abc import Iterable

import sqlalchemy as sa
from crm_common import customer_lookup, customer_refs, directory
from crm_common.errors import FieldError
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.service.errors import UnknownUser


async def require_known_users(session: AsyncSession, ids: Iterable[uuid.UUID], *, field: str) -> None:
    """Every id must be a known, active user of the directory; one 422 naming each one that is not.
    `ids` is indexed as given, so the field path points at the offending list entry."""
    ids = list(ids)
    if not ids:
        return
    rows = await session.execute(
        sa.select(directory.users.c.id).where(
            directory.users.c.id.in_(set(ids)), directory.users.c.is_active.is_(True)
        )
    )
    known = {row.id for row in rows}
    unknown = [(i, uid) for i, uid in enumerate(ids) if uid not in known]
    if unknown:
        raise UnknownUser(
            f"Not known or not active: {', '.join(str(u) for _, u in unknown)}.",
            errors=[
                FieldError(
                    field=field if field == "ownerId" else f"{field}.{i}",
                    message=f"user {uid} is not known or not active",
                    code="unknown_user",
                )
                for i, uid in unknown
            ],
        )


async def require_customer(session: AsyncSession, customer_id: uuid.UUID | None) -> uuid.UUID | None:
    """The customer an activity written through the API is for (its survivor when merged). One not
    heard of yet is looked up at customer-svc: 422 when it does not exist there, 503 when it cannot
    be asked. Running without customer-svc configured, any id is kept, as events may name it later."""
    if customer_id is None:
        return None
    if customer_lookup.current()[0] is None:
        return await resolve_customer(session, customer_id)
    return (await customer_refs.require(session, customer_id, field="customerId")).id


async def resolve_customer(session: AsyncSession, customer_id: uuid.UUID | None) -> uuid.UUID | None:
    """The customer an activity about `customer_id` belongs to now (crm_common.customer_refs: its
    survivor when merged), share-locking the way so a merge committing meanwhile re-points it. A
    customer not seen yet gets a placeholder row to lock (names come with its events)."""
    if customer_id is None:
        return None
    if await customer_refs.get(session, customer_id) is None:
        await customer_refs.ensure(session, customer_id)
    return await customer_refs.resolve(session, customer_id, lock=True)
