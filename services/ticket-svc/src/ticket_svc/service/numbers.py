"""Ticket numbers, TKT-YYYY-NNNNNN, gap-free (crm_common.numbering): the counter row is the one
thing every create of a year waits for, so the number is taken by the last statement before the
commit, which also writes the `ticket.created` event."""

from collections.abc import Callable

from crm_common import numbering
from crm_common.events.envelope import CloudEvent
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import Ticket, TicketNumberCounter


async def insert_numbered(
    session: AsyncSession, ticket: Ticket, year: int, created: Callable[[Ticket], CloudEvent]
) -> None:
    """Insert `ticket` with its number and its `ticket.created` event, `created(ticket)`."""
    await numbering.insert_numbered(
        session,
        ticket,
        counter=TicketNumberCounter,
        prefix="TKT",
        year=year,
        column="ticket_number",
        member="ticketNumber",
        created=created,
    )


__all__ = ["insert_numbered"]
