"""Events published by ticket-svc."""

import uuid
from datetime import datetime
from typing import ClassVar

from crm_common.contracts.base import (
    EventData,
    RecordArchived,
    RecordPurged,
    RecordRestored,
    RepointedByMerge,
)
from crm_common.contracts.enums import (
    CommunicationChannel,
    CommunicationDirection,
    TicketPriority,
    TicketStatus,
    TicketType,
)


class TicketEvent(EventData):
    ticket_id: uuid.UUID
    ticket_number: str
    subject: str
    customer_id: uuid.UUID
    status: TicketStatus
    priority: TicketPriority


class TicketCreated(TicketEvent):
    event_type: ClassVar[str] = "ticket.created"

    type: TicketType
    assigned_to_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None


class TicketStatusChanged(TicketEvent):
    event_type: ClassVar[str] = "ticket.status_changed"

    from_status: TicketStatus
    changed_by: uuid.UUID | None = None


class TicketEscalated(TicketEvent):
    event_type: ClassVar[str] = "ticket.escalated"

    escalation_level: int
    reason: str
    automatic: bool = False
    escalated_by: uuid.UUID | None = None


class TicketResolved(TicketEvent):
    event_type: ClassVar[str] = "ticket.resolved"

    resolution: str
    resolved_at: datetime
    resolved_by: uuid.UUID | None = None


class TicketClosed(TicketEvent):
    event_type: ClassVar[str] = "ticket.closed"

    closed_at: datetime
    closed_by: uuid.UUID | None = None


class TicketReopened(TicketEvent):
    event_type: ClassVar[str] = "ticket.reopened"

    reason: str


class TicketCommunicationAdded(EventData):
    """A message on a ticket; customer-svc moves the customer's lastContactDate from it."""

    event_type: ClassVar[str] = "ticket.communication_added"

    ticket_id: uuid.UUID
    communication_id: uuid.UUID
    customer_id: uuid.UUID
    direction: CommunicationDirection
    channel: CommunicationChannel
    internal: bool
    at: datetime


class TicketRepointed(RepointedByMerge):
    event_type: ClassVar[str] = "ticket.repointed"

    ticket_id: uuid.UUID


class TicketArchived(RecordArchived):
    """The ticket was archived: hidden from lists, restorable until purged (docs/api-guide.md, Archive)."""

    event_type: ClassVar[str] = "ticket.archived"

    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: uuid.UUID | None = None


class TicketRestored(RecordRestored):
    event_type: ClassVar[str] = "ticket.restored"

    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: uuid.UUID | None = None


class TicketPurged(RecordPurged):
    """An archived ticket was deleted after the archive retention."""

    event_type: ClassVar[str] = "ticket.purged"

    ticket_id: uuid.UUID
    ticket_number: str
    customer_id: uuid.UUID | None = None
