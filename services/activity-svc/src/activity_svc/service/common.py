"""Small helpers shared by the service modules."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common import directory
from crm_common.errors import FieldError, ProblemError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import CustomerRef

# A system note needs an owner; events from integrations may carry no acting user.
SYSTEM_USER_ID = uuid.UUID(int=0)
SYSTEM_USER_NAME = "System"
# Guard against a (nonsensical) merge cycle in the customer read model.
MAX_MERGE_HOPS = 32


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
        raise ProblemError(
            422,
            "UNKNOWN_USER",
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


_refs = CustomerRef.__table__
_LOCK_REF = (
    sa.select(_refs.c.id, _refs.c.merged_into_id)
    .where(_refs.c.id == sa.bindparam("id"))
    .with_for_update(read=True)
)


async def resolve_customer(session: AsyncSession, customer_id: uuid.UUID | None) -> uuid.UUID | None:
    """The customer an activity about `customer_id` belongs to now: the primary it was merged into
    (following a chain of merges), or itself.

    For writers: each customer on the way is share-locked (Postgres; SQLite writers are serial), so
    a merge of one of them committing meanwhile either happened before (and is followed here) or
    waits for this transaction and then re-points what it wrote. A customer not seen yet gets a
    placeholder row to lock (names come with its events)."""
    if customer_id is None:
        return None
    seen = {customer_id}
    current = customer_id
    for _ in range(MAX_MERGE_HOPS):
        found = (await session.execute(_LOCK_REF, {"id": current})).first()
        if found is None and current == customer_id:
            dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
            await session.execute(
                dialect.insert(CustomerRef)
                .values(id=customer_id, version=-1, updated_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=["id"])
            )
            continue  # lock the row now there is one (or a concurrent merge's, once it commits)
        target = found.merged_into_id if found is not None else None
        if target is None or target in seen:
            return current
        seen.add(target)
        current = target
    return current
