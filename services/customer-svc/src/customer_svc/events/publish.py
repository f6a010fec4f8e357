"""Events customer-svc publishes (contracts in crm_common.contracts.customer)."""

import uuid
from datetime import datetime
from typing import Any

from crm_common.contracts.customer import (
    CustomerArchived,
    CustomerAssigned,
    CustomerConverted,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerOwner,
    CustomerPurged,
    CustomerRestored,
    CustomerUpdated,
    OpportunityDraft,
)
from crm_common.events.envelope import CloudEvent, event_from

from customer_svc.models import Customer

SERVICE = "customer"


def owner_of(customer: Customer) -> CustomerOwner:
    """The customer's assignee and team, carried so every context can apply record scopes to it."""
    return CustomerOwner(assigned_to_id=customer.assigned_to_id, team_id=customer.team_id)


def customer_created(customer: Customer) -> CloudEvent:
    payload = CustomerCreated(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        type=customer.type,
        full_name=customer.full_name,
        email=customer.email,
        status=customer.status,
        source=customer.source,
        source_campaign_id=customer.source_campaign_id,
        assigned_to_id=customer.assigned_to_id,
        created_by=customer.created_by_id,
        priority=customer.priority,
        owner=owner_of(customer),
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_updated(customer: Customer, changes: dict[str, Any], actor_id: uuid.UUID | None) -> CloudEvent:
    payload = CustomerUpdated(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        full_name=customer.full_name,
        status=customer.status,
        changes=changes,
        updated_by=actor_id,
        owner=owner_of(customer),
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_converted(
    customer: Customer, previous_status: str, actor_id: uuid.UUID, draft: OpportunityDraft | None
) -> CloudEvent:
    payload = CustomerConverted(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        full_name=customer.full_name,
        previous_status=previous_status,
        status=customer.status,
        converted_by=actor_id,
        opportunity=draft,
        owner=owner_of(customer),
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_merged(
    primary: Customer,
    secondary: Customer,
    *,
    changes: dict[str, Any],
    actor_id: uuid.UUID,
    at: datetime,
) -> CloudEvent:
    payload = CustomerMerged(
        primary_customer_id=primary.id,
        secondary_customer_id=secondary.id,
        primary_customer_number=primary.customer_number,
        secondary_customer_number=secondary.customer_number,
        primary_full_name=primary.full_name,
        secondary_full_name=secondary.full_name,
        merged_by=actor_id,
        primary_changes=changes,
        merged_at=at,
        primary_owner=owner_of(primary),
    )
    return event_from(payload, service=SERVICE, subject=primary.id, sequence=primary.version)


def customer_assigned(
    customer: Customer,
    *,
    previous_assigned_to_id: uuid.UUID | None,
    previous_team_id: uuid.UUID | None,
    actor_id: uuid.UUID,
) -> CloudEvent:
    payload = CustomerAssigned(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        full_name=customer.full_name,
        assigned_to_id=customer.assigned_to_id,
        team_id=customer.team_id,
        previous_assigned_to_id=previous_assigned_to_id,
        previous_team_id=previous_team_id,
        assigned_by=actor_id,
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_erased(customer: Customer, *, actor_id: uuid.UUID, at: datetime) -> CloudEvent:
    payload = CustomerErased(
        customer_id=customer.id, customer_number=customer.customer_number, erased_by=actor_id, erased_at=at
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_archived(customer: Customer, *, actor_id: uuid.UUID) -> CloudEvent:
    payload = CustomerArchived(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        archived_by=actor_id,
        archived_at=customer.archived_at,
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_restored(customer: Customer, *, actor_id: uuid.UUID) -> CloudEvent:
    payload = CustomerRestored(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        restored_by=actor_id,
        restored_at=customer.updated_at,
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)


def customer_purged(customer: Customer, *, at: datetime) -> CloudEvent:
    payload = CustomerPurged(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        archived_at=customer.archived_at,
        purged_at=at,
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version + 1)
