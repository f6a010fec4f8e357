"""What ticket-svc does when other contexts' events arrive (events/handlers.py maps them here):
a customer merge moves the tickets to the survivor, an erasure scrubs the customer's text."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common import customer_refs, erasure
from crm_common.contracts.ticket import TicketRepointed
from crm_common.events.envelope import CloudEvent, event_from
from crm_common.events.outbox import add_events
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.events.publish import SERVICE
from ticket_svc.models import Ticket, TicketCommunication


async def repoint(session: AsyncSession, moves: customer_refs.Moves, event: CloudEvent) -> None:
    """A merge moved customers to another survivor: their tickets follow (a new version each, and
    updated_at is now, the time of this change, so incremental sync picks the move up)."""
    for old, survivor in moves.items():
        moved = await session.execute(
            update(Ticket)
            .where(Ticket.customer_id == old)
            .values(customer_id=survivor, version=Ticket.version + 1)
            .returning(Ticket.id, Ticket.version)
            .execution_options(synchronize_session=False)
        )
        await add_events(
            session,
            *(
                event_from(
                    TicketRepointed(ticket_id=i, from_customer_id=old, customer_id=survivor),
                    service=SERVICE,
                    subject=i,
                    sequence=v,
                )
                for i, v in moved.all()
            ),
        )


async def scrub_erased_customer(session: AsyncSession, customer_id: uuid.UUID) -> set[str]:
    """customer.erased: the text of the customer's tickets and of every communication on them (what
    the customer wrote and what was written to them) goes; numbers, statuses, SLA times and ratings
    stay, so the support metrics do not move."""
    tickets = select(Ticket.id).where(Ticket.customer_id == customer_id)
    removed = await erasure.scrub_columns(
        session,
        TicketCommunication,
        sa.or_(TicketCommunication.ticket_id.in_(tickets), TicketCommunication.customer_id == customer_id),
        text=("body",),
        json=("attachments",),
    )
    removed |= await erasure.scrub_columns(
        session,
        Ticket,
        Ticket.customer_id == customer_id,
        text=("subject", "description", "resolution", "satisfaction_comment"),
        json=("tags", "custom_fields"),
        also={"version": Ticket.version + 1, "updated_at": datetime.now(UTC)},
    )
    return removed
