"""Activity domain logic: plain async functions that take a session."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import Activity, ActivityStatus, ActivityType

SORTABLE = {
    "startDate": Activity.start_date,
    "createdAt": Activity.created_at,
    "updatedAt": Activity.updated_at,
    "priority": Activity.priority,
    "status": Activity.status,
    "type": Activity.type,
}


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
) -> Activity:
    """The system record of a business event: a completed NOTE, keyed by the event it came from."""
    note = Activity(
        type=ActivityType.NOTE,
        subject=subject,
        description=description,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        ticket_id=ticket_id,
        start_date=at,
        status=ActivityStatus.COMPLETED,
        owner_id=owner_id,
        system=True,
        source_event_id=source_event_id,
    )
    session.add(note)
    await session.flush()
    return note


async def list_activities(
    session: AsyncSession,
    *,
    params: PageParams,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    types: Sequence[str] = (),
    statuses: Sequence[str] = (),
    start_from: datetime | None = None,
    start_to: datetime | None = None,
) -> tuple[list[Activity], int]:
    query = select(Activity)
    if customer_id:
        query = query.where(Activity.customer_id == customer_id)
    if opportunity_id:
        query = query.where(Activity.opportunity_id == opportunity_id)
    if ticket_id:
        query = query.where(Activity.ticket_id == ticket_id)
    if owner_id:
        query = query.where(Activity.owner_id == owner_id)
    if types:
        query = query.where(Activity.type.in_(types))
    if statuses:
        query = query.where(Activity.status.in_(statuses))
    if start_from:
        query = query.where(Activity.start_date >= start_from)
    if start_to:
        query = query.where(Activity.start_date < start_to)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Activity.start_date.desc(), Activity.id]))
    return await paginate(session, query, params)
