"""Events pipeline-svc publishes (contracts in crm_common.contracts.pipeline).

Every opportunity event carries the opportunity's current state and the envelope's `sequence` is the
opportunity's version after the change, so a consumer keeping per-customer totals can upsert the
newest state it has seen in any delivery order. Handlers of consumed events are in `handlers.py`, their bodies in `service/reactions.py`.
"""

import uuid
from datetime import date, datetime
from typing import Any

from crm_common.contracts.pipeline import (
    InvoiceCreated,
    InvoiceRepointed,
    InvoiceStatusChanged,
    OpportunityArchived,
    OpportunityCreated,
    OpportunityLost,
    OpportunityPurged,
    OpportunityRestored,
    OpportunityStageChanged,
    OpportunityUpdated,
    OpportunityWon,
)
from crm_common.events.envelope import CloudEvent, event_from

from pipeline_svc.models import Invoice, Opportunity

SERVICE = "pipeline"


def _state(opportunity: Opportunity, stage_name: str) -> dict[str, Any]:
    return {
        "opportunity_id": opportunity.id,
        "customer_id": opportunity.customer_id,
        "title": opportunity.title,
        "status": opportunity.status,
        "amount": opportunity.amount,
        "currency": opportunity.currency,
        "probability": opportunity.probability,
        "stage_id": opportunity.stage_id,
        "stage_name": stage_name,
        "owner_id": opportunity.owner_id,
        "expected_close_date": opportunity.expected_close_date,
    }


def _event(payload, opportunity: Opportunity) -> CloudEvent:
    return event_from(payload, service=SERVICE, subject=opportunity.id, sequence=opportunity.version)


def opportunity_created(opportunity: Opportunity, stage_name: str, *, by: uuid.UUID | None) -> CloudEvent:
    return _event(OpportunityCreated(**_state(opportunity, stage_name), created_by=by), opportunity)


def opportunity_updated(
    opportunity: Opportunity, stage_name: str, *, changes: dict[str, Any], by: uuid.UUID | None
) -> CloudEvent:
    payload = OpportunityUpdated(**_state(opportunity, stage_name), changes=changes, updated_by=by)
    return _event(payload, opportunity)


def opportunity_stage_changed(
    opportunity: Opportunity,
    stage_name: str,
    *,
    from_stage_id: uuid.UUID,
    from_stage_name: str,
    by: uuid.UUID | None,
) -> CloudEvent:
    payload = OpportunityStageChanged(
        **_state(opportunity, stage_name),
        from_stage_id=from_stage_id,
        from_stage_name=from_stage_name,
        changed_by=by,
    )
    return _event(payload, opportunity)


def opportunity_won(opportunity: Opportunity, stage_name: str, *, by: uuid.UUID | None) -> CloudEvent:
    payload = OpportunityWon(
        **_state(opportunity, stage_name), close_date=opportunity.actual_close_date, won_by=by
    )
    return _event(payload, opportunity)


def opportunity_lost(opportunity: Opportunity, stage_name: str, *, by: uuid.UUID | None) -> CloudEvent:
    payload = OpportunityLost(
        **_state(opportunity, stage_name),
        close_date=opportunity.actual_close_date or date.today(),
        reason=opportunity.lost_reason or "",
        lost_by=by,
    )
    return _event(payload, opportunity)


def invoice_created(invoice: Invoice) -> CloudEvent:
    payload = InvoiceCreated(
        invoice_id=invoice.id,
        invoice_number=invoice.invoice_number,
        customer_id=invoice.customer_id,
        opportunity_id=invoice.opportunity_id,
        total=invoice.total,
        currency=invoice.currency,
        status=invoice.status,
        due_date=invoice.due_date,
    )
    return event_from(payload, service=SERVICE, subject=invoice.id, sequence=invoice.version)


def invoice_status_changed(invoice: Invoice, from_status: str) -> CloudEvent:
    payload = InvoiceStatusChanged(
        invoice_id=invoice.id,
        invoice_number=invoice.invoice_number,
        customer_id=invoice.customer_id,
        opportunity_id=invoice.opportunity_id,
        total=invoice.total,
        currency=invoice.currency,
        status=invoice.status,
        from_status=from_status,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        paid_date=invoice.paid_date,
    )
    return event_from(payload, service=SERVICE, subject=invoice.id, sequence=invoice.version)


def invoice_repointed(invoice_id: uuid.UUID, version: int, old: uuid.UUID, survivor: uuid.UUID) -> CloudEvent:
    payload = InvoiceRepointed(invoice_id=invoice_id, from_customer_id=old, customer_id=survivor)
    return event_from(payload, service=SERVICE, subject=invoice_id, sequence=version)


def opportunity_archived(opportunity: Opportunity, *, by: uuid.UUID) -> CloudEvent:
    payload = OpportunityArchived(
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        archived_by=by,
        archived_at=opportunity.archived_at,
    )
    return _event(payload, opportunity)


def opportunity_restored(opportunity: Opportunity, *, by: uuid.UUID) -> CloudEvent:
    payload = OpportunityRestored(
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        restored_by=by,
        restored_at=opportunity.updated_at,
    )
    return _event(payload, opportunity)


def opportunity_purged(opportunity: Opportunity, *, at: datetime) -> CloudEvent:
    payload = OpportunityPurged(
        opportunity_id=opportunity.id,
        customer_id=opportunity.customer_id,
        archived_at=opportunity.archived_at,
        purged_at=at,
    )
    # Newer than any state of the opportunity: a consumer keeping its newest state drops it for good.
    return event_from(payload, service=SERVICE, subject=opportunity.id, sequence=opportunity.version + 1)
