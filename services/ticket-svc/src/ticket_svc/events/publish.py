"""Events ticket-svc publishes (contracts in crm_common.contracts.ticket)."""

import uuid
from datetime import datetime

from crm_common.contracts.ticket import (
    TicketArchived,
    TicketClosed,
    TicketCommunicationAdded,
    TicketCreated,
    TicketEscalated,
    TicketPurged,
    TicketReopened,
    TicketResolved,
    TicketRestored,
    TicketStatusChanged,
)
from crm_common.events.envelope import CloudEvent, event_from
from crm_common.events.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import Ticket, TicketCommunication

SERVICE = "ticket"


def _base(ticket: Ticket) -> dict:
    return {
        "ticket_id": ticket.id,
        "ticket_number": ticket.ticket_number,
        "subject": ticket.subject,
        "customer_id": ticket.customer_id,
        "status": ticket.status,
        "priority": ticket.priority,
    }


def created(ticket: Ticket) -> TicketCreated:
    return TicketCreated(
        **_base(ticket),
        type=ticket.type,
        assigned_to_id=ticket.assigned_to_id,
        created_by=ticket.created_by_id,
    )


def created_event(ticket: Ticket) -> CloudEvent:
    """`ticket.created` for a new ticket (version 1)."""
    return event_from(created(ticket), service=SERVICE, subject=ticket.id, sequence=ticket.version)


def archived(ticket: Ticket, by: uuid.UUID) -> CloudEvent:
    payload = TicketArchived(
        ticket_id=ticket.id,
        ticket_number=ticket.ticket_number,
        customer_id=ticket.customer_id,
        archived_by=by,
        archived_at=ticket.archived_at,
    )
    return event_from(payload, service=SERVICE, subject=ticket.id, sequence=ticket.version)


def restored(ticket: Ticket, by: uuid.UUID) -> CloudEvent:
    payload = TicketRestored(
        ticket_id=ticket.id,
        ticket_number=ticket.ticket_number,
        customer_id=ticket.customer_id,
        restored_by=by,
        restored_at=ticket.updated_at,
    )
    return event_from(payload, service=SERVICE, subject=ticket.id, sequence=ticket.version)


def purged(ticket: Ticket, at: datetime) -> CloudEvent:
    payload = TicketPurged(
        ticket_id=ticket.id,
        ticket_number=ticket.ticket_number,
        customer_id=ticket.customer_id,
        archived_at=ticket.archived_at,
        purged_at=at,
    )
    return event_from(payload, service=SERVICE, subject=ticket.id, sequence=ticket.version + 1)


def status_changed(ticket: Ticket, from_status: str, by: uuid.UUID | None) -> TicketStatusChanged:
    return TicketStatusChanged(**_base(ticket), from_status=from_status, changed_by=by)


def escalated(ticket: Ticket, reason: str, by: uuid.UUID | None, automatic: bool) -> TicketEscalated:
    return TicketEscalated(
        **_base(ticket),
        escalation_level=ticket.escalation_level,
        reason=reason,
        automatic=automatic,
        escalated_by=by,
    )


def resolved(ticket: Ticket, by: uuid.UUID | None) -> TicketResolved:
    return TicketResolved(
        **_base(ticket), resolution=ticket.resolution or "", resolved_at=ticket.resolved_at, resolved_by=by
    )


def closed(ticket: Ticket, by: uuid.UUID | None) -> TicketClosed:
    return TicketClosed(**_base(ticket), closed_at=ticket.closed_at, closed_by=by)


def reopened(ticket: Ticket, reason: str) -> TicketReopened:
    return TicketReopened(**_base(ticket), reason=reason)


def communication_added(ticket: Ticket, communication: TicketCommunication) -> TicketCommunicationAdded:
    return TicketCommunicationAdded(
        ticket_id=ticket.id,
        communication_id=communication.id,
        customer_id=ticket.customer_id,
        direction=communication.direction,
        channel=communication.channel,
        internal=communication.internal,
        at=communication.created_at,
    )


class Pending:
    """Events of one change to a ticket, written once the change is flushed: they all carry the
    ticket's version after the change as their `sequence`. Payloads are built as the change goes,
    so each one describes the ticket at its step (e.g. status_changed, then resolved)."""

    def __init__(self, ticket: Ticket):
        self.ticket = ticket
        self.payloads: list = []

    def add(self, payload) -> None:
        self.payloads.append(payload)

    async def write(self, session: AsyncSession) -> None:
        await session.flush()
        await add_events(
            session,
            *(
                event_from(p, service=SERVICE, subject=self.ticket.id, sequence=self.ticket.version)
                for p in self.payloads
            ),
        )
