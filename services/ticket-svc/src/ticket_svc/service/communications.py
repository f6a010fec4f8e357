"""Communications on a ticket, and what they do to it:

- the first OUTBOUND, non-internal message is the first response (firstResponseAt, responseTime in
  business minutes); a NEW ticket answered becomes OPEN;
- a customer's message (INBOUND) on a PENDING ticket makes it OPEN again, and on a RESOLVED ticket
  reopens it when it comes within the reopen window of the resolution;
- nothing can be added to a CLOSED ticket.
"""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_common import directory
from crm_common.errors import FieldError
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import ScopedCaller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.events import publish
from ticket_svc.models import CommunicationChannel, CommunicationDirection, TicketCommunication, TicketStatus
from ticket_svc.schemas import TicketCommunicationCreateRequest
from ticket_svc.service import sla
from ticket_svc.service.errors import CommunicationNotFound, InvalidCommunication
from ticket_svc.service.policies import terms_for
from ticket_svc.service.tickets import clock_of, get_ticket, ticket_closed
from ticket_svc.service.workflow import move, record_late

CUSTOMER_REPLIED = "Customer replied"


def _invalid(field: str, message: str) -> InvalidCommunication:
    return InvalidCommunication(
        message,
        errors=[FieldError(field=field, message=message, code="invalid_communication")],
    )


async def add_communication(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    data: TicketCommunicationCreateRequest,
    actor_id: uuid.UUID,
    now: datetime,
    reopen_window: timedelta,
    caller: ScopedCaller | None = None,
) -> TicketCommunication:
    ticket = await get_ticket(session, ticket_id, for_update=True, caller=caller, write=True)
    if ticket.status == TicketStatus.CLOSED:
        raise ticket_closed(ticket)
    internal = data.internal or data.channel == CommunicationChannel.NOTE
    inbound = data.direction == CommunicationDirection.INBOUND
    if inbound and internal:
        raise _invalid("internal", "An internal note is written by a user: it cannot be INBOUND.")
    if inbound and data.author_id is not None:
        raise _invalid(
            "authorId", "An INBOUND message comes from the customer; authorId is for OUTBOUND ones."
        )
    if data.author_id is not None and data.author_id != actor_id:
        await directory.require_active_user(session, data.author_id, field="authorId")

    communication = TicketCommunication(
        ticket_id=ticket.id,
        direction=data.direction,
        channel=data.channel,
        internal=internal,
        author_id=None if inbound else (data.author_id or actor_id),
        customer_id=ticket.customer_id if inbound else None,
        body=data.body,
        attachments=[a.model_dump(by_alias=True, exclude_none=True) for a in data.attachments],
        recorded_by_id=actor_id,
        created_at=now,
    )
    session.add(communication)

    terms = await terms_for(session, ticket.sla_revision_id)
    pending = publish.Pending(ticket)
    if not inbound and not internal and ticket.first_response_at is None:
        ticket.first_response_at = now
        ticket.response_time = sla.elapsed_minutes(terms.calendar, clock_of(ticket), now)
        await record_late(session, ticket, terms, now, now)
        if ticket.status == TicketStatus.NEW:
            await move(session, ticket, terms, TicketStatus.OPEN, now=now, actor_id=actor_id, pending=pending)
    elif inbound and ticket.status == TicketStatus.PENDING:
        await move(session, ticket, terms, TicketStatus.OPEN, now=now, actor_id=actor_id, pending=pending)
    elif (
        inbound
        and ticket.status == TicketStatus.RESOLVED
        and ticket.resolved_at is not None
        and now - ticket.resolved_at <= reopen_window
    ):
        await move(
            session,
            ticket,
            terms,
            TicketStatus.OPEN,
            now=now,
            actor_id=actor_id,
            pending=pending,
            reason=CUSTOMER_REPLIED,
        )
    ticket.updated_at = now
    await session.flush()  # the communication exists and the ticket's version moved on
    pending.add(publish.communication_added(ticket, communication))
    await pending.write(session)
    return communication


async def get_communication(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    communication_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> TicketCommunication:
    await get_ticket(session, ticket_id, caller=caller)
    communication = await session.get(TicketCommunication, communication_id)
    # An id from another ticket is as unknown here as one that does not exist.
    if communication is None or communication.ticket_id != ticket_id:
        raise CommunicationNotFound(f"Ticket {ticket_id} has no communication {communication_id}.")
    return communication


SORTABLE = {"createdAt": TicketCommunication.created_at}


async def list_communications(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    params: PageParams,
    internal: bool | None,
    direction: Sequence[str] = (),
    caller: ScopedCaller | None = None,
) -> tuple[list[TicketCommunication], int]:
    await get_ticket(session, ticket_id, caller=caller)
    query = select(TicketCommunication).where(TicketCommunication.ticket_id == ticket_id)
    if internal is not None:
        query = query.where(TicketCommunication.internal.is_(internal))
    if direction:
        query = query.where(TicketCommunication.direction.in_(direction))
    query = query.order_by(
        *order_by(params.sort, SORTABLE, [TicketCommunication.created_at, TicketCommunication.id])
    )
    return await paginate(session, query, params)
