"""What activity-svc publishes: the CloudEvents of its activities, built from the contracts
(crm_common.contracts.activity). Each is added to the outbox in the transaction that made the change."""

import uuid
from datetime import datetime

from crm_common.contracts.activity import (
    ActivityArchived,
    ActivityCompleted,
    ActivityPurged,
    ActivityRepointed,
    ActivityRestored,
)
from crm_common.events.envelope import CloudEvent, event_from

from activity_svc.models import Activity

SERVICE = "activity"


def activity_archived(activity: Activity, *, by: uuid.UUID) -> CloudEvent:
    payload = ActivityArchived(
        activity_id=activity.id,
        customer_id=activity.customer_id,
        archived_by=by,
        archived_at=activity.archived_at,
    )
    return event_from(payload, service=SERVICE, subject=activity.id, sequence=activity.version)


def activity_restored(activity: Activity, *, by: uuid.UUID) -> CloudEvent:
    payload = ActivityRestored(
        activity_id=activity.id,
        customer_id=activity.customer_id,
        restored_by=by,
        restored_at=activity.updated_at,
    )
    return event_from(payload, service=SERVICE, subject=activity.id, sequence=activity.version)


def activity_purged(activity: Activity, *, at: datetime) -> CloudEvent:
    payload = ActivityPurged(
        activity_id=activity.id,
        customer_id=activity.customer_id,
        archived_at=activity.archived_at,
        purged_at=at,
    )
    return event_from(payload, service=SERVICE, subject=activity.id, sequence=activity.version + 1)


def activity_completed(activity: Activity) -> CloudEvent:
    payload = ActivityCompleted(
        activity_id=activity.id,
        type=activity.type,
        subject=activity.subject,
        owner_id=activity.owner_id,
        completed_at=activity.completed_at,
        customer_id=activity.customer_id,
        opportunity_id=activity.opportunity_id,
        ticket_id=activity.ticket_id,
        outcome=activity.outcome,
    )
    return event_from(payload, service=SERVICE, subject=activity.id, sequence=activity.version)


def activity_repointed(
    activity_id: uuid.UUID, *, from_customer_id: uuid.UUID, customer_id: uuid.UUID, sequence: int
) -> CloudEvent:
    payload = ActivityRepointed(
        activity_id=activity_id, from_customer_id=from_customer_id, customer_id=customer_id
    )
    return event_from(payload, service=SERVICE, subject=activity_id, sequence=sequence)
