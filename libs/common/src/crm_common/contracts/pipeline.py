"""Events published by pipeline-svc.

Every opportunity event carries the opportunity's current state (customer, status, amount,
currency) and the envelope's `sequence` is its version, so a consumer keeping totals can upsert
the newest state it has seen in any delivery order.
"""

import uuid
from datetime import date
from typing import Any, ClassVar

from crm_common.contracts.base import (
    EventData,
    RecordArchived,
    RecordPurged,
    RecordRestored,
    RepointedByMerge,
)
from crm_common.contracts.enums import InvoiceStatus, OpportunityStatus
from crm_common.schemas import EventDecimal


class OpportunityState(EventData):
    opportunity_id: uuid.UUID
    customer_id: uuid.UUID
    title: str
    status: OpportunityStatus
    amount: EventDecimal
    currency: str
    probability: int
    stage_id: uuid.UUID
    stage_name: str
    owner_id: uuid.UUID
    expected_close_date: date | None = None


class OpportunityCreated(OpportunityState):
    event_type: ClassVar[str] = "opportunity.created"

    created_by: uuid.UUID | None = None


class OpportunityUpdated(OpportunityState):
    event_type: ClassVar[str] = "opportunity.updated"

    changes: dict[str, Any] = {}
    updated_by: uuid.UUID | None = None


class OpportunityStageChanged(OpportunityState):
    event_type: ClassVar[str] = "opportunity.stage_changed"

    from_stage_id: uuid.UUID
    from_stage_name: str
    changed_by: uuid.UUID | None = None


class OpportunityWon(OpportunityState):
    event_type: ClassVar[str] = "opportunity.won"

    close_date: date
    won_by: uuid.UUID | None = None


class OpportunityLost(OpportunityState):
    event_type: ClassVar[str] = "opportunity.lost"

    close_date: date
    reason: str
    lost_by: uuid.UUID | None = None


class InvoiceCreated(EventData):
    event_type: ClassVar[str] = "invoice.created"

    invoice_id: uuid.UUID
    invoice_number: str
    customer_id: uuid.UUID
    opportunity_id: uuid.UUID | None = None
    total: EventDecimal
    currency: str
    status: InvoiceStatus
    due_date: date | None = None


class InvoiceStatusChanged(EventData):
    """An invoice was issued, paid or voided (its state after the change)."""

    event_type: ClassVar[str] = "invoice.status_changed"

    invoice_id: uuid.UUID
    invoice_number: str
    customer_id: uuid.UUID
    opportunity_id: uuid.UUID | None = None
    total: EventDecimal
    currency: str
    status: InvoiceStatus
    from_status: InvoiceStatus
    issue_date: date | None = None
    due_date: date | None = None
    paid_date: date | None = None


class InvoiceRepointed(RepointedByMerge):
    event_type: ClassVar[str] = "invoice.repointed"

    invoice_id: uuid.UUID


class OpportunityArchived(RecordArchived):
    """The opportunity was archived: hidden from lists, the board and the forecast, restorable until
    purged (docs/api-guide.md, Archive). It still counts in its customer's totals until purged."""

    event_type: ClassVar[str] = "opportunity.archived"

    opportunity_id: uuid.UUID
    customer_id: uuid.UUID


class OpportunityRestored(RecordRestored):
    event_type: ClassVar[str] = "opportunity.restored"

    opportunity_id: uuid.UUID
    customer_id: uuid.UUID


class OpportunityPurged(RecordPurged):
    """An archived opportunity was deleted after the archive retention: its customer's totals drop it;
    invoices raised from it keep their lines and lose the link (`opportunityId` null)."""

    event_type: ClassVar[str] = "opportunity.purged"

    opportunity_id: uuid.UUID
    customer_id: uuid.UUID
