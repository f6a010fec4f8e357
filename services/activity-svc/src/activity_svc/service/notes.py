"""The system record: one completed NOTE per business event (keyed by the event id), and the small
read model of customers (names, numbers, merges) kept from customer-svc's events."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import Activity, ActivityPriority, ActivityStatus, ActivityType, CustomerRef
from activity_svc.service.common import resolve_customer


async def record_system_note(
    session: AsyncSession,
    *,
    source_event_id: uuid.UUID,
    subject: str,
    description: str,
    at: datetime,
    owner_id: uuid.UUID,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    outcome: str | None = None,
) -> bool:
    """The system record of a business event: a completed NOTE, keyed by the event it came from.
    A note about a customer that has since been merged lands on the primary. False when this event
    already has its note (the inbox makes that rare; the unique key makes a second one impossible).

    One prepared Core INSERT (no ORM unit of work): this is the hot path of event ingestion."""
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "type": ActivityType.NOTE.value,
        "subject": subject[:300],
        "description": description,
        "customer_id": await resolve_customer(session, customer_id),
        "opportunity_id": opportunity_id,
        "ticket_id": ticket_id,
        "start_date": at,
        "end_date": None,
        "duration": None,
        "is_all_day": False,
        "status": ActivityStatus.COMPLETED.value,
        "priority": ActivityPriority.NORMAL.value,
        "owner_id": owner_id,
        "outcome": outcome[:500] if outcome else None,
        "next_steps": None,
        "follow_up_date": None,
        "attachments": [],
        "links": [],
        "custom_fields": {},
        "system": True,
        "source_event_id": source_event_id,
        "completed_at": at,
        "follow_up_of_id": None,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    return (await session.execute(_note_insert(session), values)).rowcount == 1


_NOTE_INSERTS = {
    name: dialect.insert(Activity.__table__).on_conflict_do_nothing(index_elements=["source_event_id"])
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _note_insert(session: AsyncSession):
    return _NOTE_INSERTS["postgresql" if session.bind.dialect.name == "postgresql" else "sqlite"]


def _insert(session: AsyncSession):
    return (postgresql if session.bind.dialect.name == "postgresql" else sqlite).insert


async def remember_customer(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    customer_number: str | None,
    full_name: str | None,
    sequence: int | None,
) -> None:
    """Upsert a customer's name and number; an event older than the one applied is ignored."""
    insert = _insert(session)
    stmt = insert(CustomerRef).values(
        id=customer_id,
        customer_number=customer_number,
        full_name=full_name,
        version=sequence or 0,
        updated_at=datetime.now(UTC),
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "customer_number": stmt.excluded.customer_number,
                "full_name": stmt.excluded.full_name,
                "version": stmt.excluded.version,
                "updated_at": stmt.excluded.updated_at,
            },
            where=CustomerRef.version < stmt.excluded.version,
        )
    )


async def merge_customers(
    session: AsyncSession,
    *,
    primary_id: uuid.UUID,
    secondary_id: uuid.UUID,
    secondary_number: str,
    secondary_name: str,
) -> uuid.UUID:
    """Record that the secondary now lives on in the primary and re-point every activity of the
    secondary. Returns the customer the activities went to (the primary, or where the primary itself
    was merged to, if that event came first)."""
    insert = _insert(session)
    now = datetime.now(UTC)
    # Known or not (its customer.created may still be on its way), the secondary is merged: later
    # events about it land on the primary.
    stmt = insert(CustomerRef).values(
        id=secondary_id, customer_number=secondary_number, full_name=secondary_name, version=0, updated_at=now
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"customer_number": stmt.excluded.customer_number, "full_name": stmt.excluded.full_name},
            where=CustomerRef.version < 0,  # a placeholder: no customer event applied yet
        )
    )
    target = await resolve_customer(session, primary_id)
    if target == secondary_id:
        # A cycle (B into A after A into B): keep the first merge, re-point nothing.
        return target
    await session.execute(
        update(CustomerRef)
        .where(CustomerRef.id == secondary_id)
        .values(merged_into_id=primary_id, updated_at=now)
    )
    await session.execute(
        update(Activity)
        .where(Activity.customer_id == secondary_id)
        .values(customer_id=target, version=Activity.version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return target


async def customer_names(session: AsyncSession, ids) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(CustomerRef.id, CustomerRef.full_name).where(CustomerRef.id.in_(wanted))
    )
    return {row.id: row.full_name for row in rows if row.full_name is not None}
