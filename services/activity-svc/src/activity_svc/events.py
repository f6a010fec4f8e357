"""Handlers for the events activity-svc consumes. Each runs inside the inbox transaction."""

import uuid

from crm_common.contracts.customer import CustomerCreated
from crm_common.events.envelope import CloudEvent
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc import service

# A system note needs an owner; events from integrations may carry no acting user.
SYSTEM_USER_ID = uuid.UUID(int=0)


async def on_customer_created(session: AsyncSession, event: CloudEvent) -> None:
    data = CustomerCreated.model_validate(event.data)
    await service.record_system_note(
        session,
        source_event_id=event.id,
        subject="Customer created",
        description=f"New {data.type.lower()} customer created: {data.full_name}",
        at=event.time,
        owner_id=data.created_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
    )


HANDLERS = {
    "customer.created": on_customer_created,
}
