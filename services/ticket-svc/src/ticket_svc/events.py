"""Events ticket-svc publishes (contracts in crm_common.contracts.ticket) and the handlers of the
events it consumes (customer-svc's customers, for the local customer table)."""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common import customer_refs, erasure
from crm_common.contracts.ticket import (
    TicketArchived,
    TicketClosed,
    TicketCommunicationAdded,
    TicketCreated,
    TicketEscalated,
    TicketPurged,
    TicketReopened,
    TicketRepointed,
    TicketResolved,
    TicketRestored,
    TicketStatusChanged,
)
from crm_common.events.envelope import CloudEvent, event_from
from crm_common.events.outbox import add_events
from sqlalchemy import select, update
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


# --- consumed ------------------------------------------------------------------------------------


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


HANDLERS = {
    **customer_refs.handlers(repoint),
    "customer.erased": erasure.erased_handler(scrub_erased_customer),
}
