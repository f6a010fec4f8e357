"""Events published by customer-svc."""

import uuid
from datetime import date, datetime
from typing import Any, ClassVar

from crm_common.contracts.base import EventData, RecordArchived, RecordPurged, RecordRestored
from crm_common.contracts.enums import CustomerPriority, CustomerStatus, CustomerType
from crm_common.schemas import EventDecimal


class CustomerOwner(EventData):
    """Who a customer belongs to for record scopes (crm_common.record_scope): its assignee and team.
    Carried by customer.created/updated/converted (and a merge's primary) so every context keeps it in
    crm_common.customer_refs; absent (null) in events published before it existed."""

    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None


class CustomerCreated(EventData):
    event_type: ClassVar[str] = "customer.created"
    version: ClassVar[int] = 1

    customer_id: uuid.UUID
    customer_number: str
    type: CustomerType
    full_name: str
    email: str
    status: CustomerStatus
    source: str | None = None
    source_campaign_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    # LOW / MEDIUM / HIGH / CRITICAL: ticket-svc picks SLA policies by it.
    priority: CustomerPriority | None = None
    # The customer's assignee and team after the event (additive; null in older events).
    owner: CustomerOwner | None = None


class CustomerUpdated(EventData):
    """Fields changed by an update; `changes` maps each changed camelCase field to its new value."""

    event_type: ClassVar[str] = "customer.updated"

    customer_id: uuid.UUID
    customer_number: str
    full_name: str
    status: CustomerStatus
    changes: dict[str, Any]
    updated_by: uuid.UUID | None = None
    owner: CustomerOwner | None = None


class OpportunityDraft(EventData):
    """The opportunity a conversion asks pipeline-svc to create, with the id assigned up front."""

    opportunity_id: uuid.UUID
    title: str
    description: str | None = None
    amount: EventDecimal | None = None
    currency: str = "USD"
    expected_close_date: date | None = None
    stage_id: uuid.UUID | None = None
    probability: int | None = None
    owner_id: uuid.UUID | None = None


class CustomerConverted(EventData):
    event_type: ClassVar[str] = "customer.converted"

    customer_id: uuid.UUID
    customer_number: str
    full_name: str
    previous_status: CustomerStatus
    status: CustomerStatus
    converted_by: uuid.UUID | None = None
    opportunity: OpportunityDraft | None = None
    owner: CustomerOwner | None = None


class CustomerMerged(EventData):
    """The secondary customer was merged into the primary: re-point everything of the secondary."""

    event_type: ClassVar[str] = "customer.merged"

    primary_customer_id: uuid.UUID
    secondary_customer_id: uuid.UUID
    primary_customer_number: str
    secondary_customer_number: str
    primary_full_name: str
    secondary_full_name: str
    merged_by: uuid.UUID | None = None
    # Fields of the primary the merge changed (camelCase -> new value), like customer.updated's.
    primary_changes: dict[str, Any] = {}
    merged_at: datetime | None = None
    # The primary's assignee and team after the merge.
    primary_owner: CustomerOwner | None = None


class CustomerAssigned(EventData):
    event_type: ClassVar[str] = "customer.assigned"

    customer_id: uuid.UUID
    customer_number: str
    full_name: str
    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    previous_assigned_to_id: uuid.UUID | None = None
    previous_team_id: uuid.UUID | None = None
    assigned_by: uuid.UUID | None = None


class CustomerErased(EventData):
    """The person's personal data was erased on request (GDPR art. 17): every context scrubs what it
    holds about this customer (names, contact data, free text) and keeps ids, amounts and counts.
    Carries no personal data itself."""

    event_type: ClassVar[str] = "customer.erased"

    customer_id: uuid.UUID
    customer_number: str
    erased_by: uuid.UUID | None = None
    erased_at: datetime


class CustomerArchived(RecordArchived):
    """The customer was archived: hidden from lists, restorable until purged (docs/api-guide.md,
    Archive)."""

    event_type: ClassVar[str] = "customer.archived"

    customer_id: uuid.UUID
    customer_number: str


class CustomerRestored(RecordRestored):
    event_type: ClassVar[str] = "customer.restored"

    customer_id: uuid.UUID
    customer_number: str


class CustomerPurged(RecordPurged):
    """An archived customer was deleted after the archive retention."""

    event_type: ClassVar[str] = "customer.purged"

    customer_id: uuid.UUID
    customer_number: str
