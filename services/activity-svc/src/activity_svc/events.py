"""Handlers for the events activity-svc consumes. Each runs inside the inbox transaction."""

import uuid

from crm_common.events.envelope import CloudEvent
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc import service

# A system note needs an owner; events from integrations may carry no acting user.
SYSTEM_USER_ID = uuid.UUID(int=0)


async def on_customer_created(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data
    kind = str(data.get("type", "INDIVIDUAL")).lower()
    await service.record_system_note(
        session,
        source_event_id=event.id,
        subject="Customer created",
        description=f"New {kind} customer created: {data.get('fullName', '')}",
        at=event.time,
        owner_id=uuid.UUID(data["createdBy"]) if data.get("createdBy") else SYSTEM_USER_ID,
        customer_id=uuid.UUID(data["customerId"]),
    )


HANDLERS = {
    "customer.created": on_customer_created,
}
