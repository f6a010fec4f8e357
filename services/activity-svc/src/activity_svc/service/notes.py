"""The system record: one completed NOTE per business event (keyed by the event id), and the small

(The customers' read model is crm_common.customer_refs.)"""

import uuid
from datetime import UTC, datetime

from crm_common.db import dialect_name, insert_for
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import Activity, ActivityPriority, ActivityStatus, ActivityType
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
    customer_resolved: bool = False,
) -> bool:
    """The system record of a business event: a completed NOTE, keyed by the event it came from.
    A note about a customer that has since been merged lands on the primary (unless the caller
    knows `customer_id` is where it belongs: `customer_resolved`). False when this event
    already has its note (the inbox makes that rare; the unique key makes a second one impossible).

    One prepared Core INSERT (no ORM unit of work): this is the hot path of event ingestion."""
    now = datetime.now(UTC)
    values = {
        "id": uuid.uuid4(),
        "type": ActivityType.NOTE.value,
        "subject": subject[:300],
        "description": description,
        "customer_id": customer_id if customer_resolved else await resolve_customer(session, customer_id),
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
    name: insert_for(name, Activity.__table__).on_conflict_do_nothing(index_elements=["source_event_id"])
    for name in ("postgresql", "sqlite")
}


def _note_insert(session: AsyncSession):
    return _NOTE_INSERTS[dialect_name(session)]
