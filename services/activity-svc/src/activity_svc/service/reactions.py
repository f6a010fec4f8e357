"""What activity-svc does when other contexts' events arrive: a system note per business event,
the activities following a customer merge, and a customer's erasure.

Each reaction runs inside the inbox transaction (one note per event id, never two). Notes are
independent of each other and dated by the event, so any delivery order gives the same timeline;
the customer read model applies names by the event's `sequence` and merges whatever came first.
Subjects and descriptions follow the seed's wording where the seed has one.
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common import customer_refs, directory, erasure
from crm_common.contracts.campaign import CampaignMemberConverted, CampaignTargetAdded
from crm_common.contracts.customer import (
    CustomerAssigned,
    CustomerConverted,
    CustomerCreated,
    CustomerMerged,
)
from crm_common.contracts.pipeline import (
    OpportunityCreated,
    OpportunityLost,
    OpportunityStageChanged,
    OpportunityWon,
)
from crm_common.contracts.ticket import TicketClosed, TicketCreated, TicketEscalated, TicketResolved
from crm_common.directory import SYSTEM_USER_ID
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.events import publish
from activity_svc.models import Activity
from activity_svc.service import notes

# --- customers --------------------------------------------------------------------------------------


async def on_customer_created(session: AsyncSession, event: CloudEvent) -> None:
    stands_alone = await customer_refs.apply_created(session, event)
    data = CustomerCreated.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Customer created",
        description=f"New {data.type.lower()} customer created: {data.full_name}",
        at=event.time,
        owner_id=data.created_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        # Nearly always: the survivor is the customer itself, with no lookup (crm_common.customer_refs).
        customer_resolved=stands_alone,
    )


async def on_customer_converted(session: AsyncSession, event: CloudEvent) -> None:
    await customer_refs.on_customer_converted(session, event)
    data = CustomerConverted.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Lead converted to customer",
        description=f"Lead {data.full_name} has been converted to a customer",
        at=event.time,
        owner_id=data.converted_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
    )


async def on_customer_merged(session: AsyncSession, event: CloudEvent) -> None:
    moves = await customer_refs.apply_merge(session, event)
    now = datetime.now(UTC)
    for old, survivor in moves.items():  # the activities follow (a new version each)
        moved = await session.execute(
            sa.update(Activity)
            .where(Activity.customer_id == old)
            .values(customer_id=survivor, version=Activity.version + 1, updated_at=now)
            .returning(Activity.id, Activity.version)
            .execution_options(synchronize_session=False)
        )
        await add_events(
            session,
            *(
                publish.activity_repointed(i, from_customer_id=old, customer_id=survivor, sequence=v)
                for i, v in moved.all()
            ),
        )
    data = CustomerMerged.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Customer merge completed",
        description=(
            f"Customer {data.secondary_full_name} ({data.secondary_customer_number}) merged into "
            f"{data.primary_full_name} ({data.primary_customer_number})"
        ),
        at=_aware(getattr(data, "merged_at", None), event.time),
        owner_id=data.merged_by or SYSTEM_USER_ID,
        customer_id=data.primary_customer_id,
    )


async def _team_name(session: AsyncSession, team_id) -> str | None:
    return (
        await session.execute(sa.select(directory.teams.c.name).where(directory.teams.c.id == team_id))
    ).scalar_one_or_none()


async def on_customer_assigned(session: AsyncSession, event: CloudEvent) -> None:
    await customer_refs.on_customer_assigned(session, event)
    data = CustomerAssigned.model_validate(event.data)
    if data.assigned_to_id is not None:
        names = await directory.user_names(session, [data.assigned_to_id])
        who = names.get(data.assigned_to_id, f"user {data.assigned_to_id}")
    else:
        who = "nobody"
    description = f"Customer {data.full_name} assigned to {who}"
    if data.team_id is not None:
        team = await _team_name(session, data.team_id) or str(data.team_id)
        description += f" (team {team})"
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Customer assigned",
        description=description,
        at=event.time,
        owner_id=data.assigned_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
    )


# --- opportunities ----------------------------------------------------------------------------------


async def on_opportunity_created(session: AsyncSession, event: CloudEvent) -> None:
    data = OpportunityCreated.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Opportunity created",
        description=f"New opportunity created: {data.title} - {data.amount} {data.currency}",
        at=event.time,
        owner_id=data.created_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        opportunity_id=data.opportunity_id,
    )


async def on_opportunity_stage_changed(session: AsyncSession, event: CloudEvent) -> None:
    data = OpportunityStageChanged.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Stage updated",
        description=f'Opportunity moved from "{data.from_stage_name}" to "{data.stage_name}"',
        at=event.time,
        owner_id=data.changed_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        opportunity_id=data.opportunity_id,
    )


async def on_opportunity_won(session: AsyncSession, event: CloudEvent) -> None:
    data = OpportunityWon.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Opportunity won",
        description=f"Opportunity won! Amount: {data.amount} {data.currency}",
        outcome=f"Won: {data.amount} {data.currency}",
        at=event.time,
        owner_id=data.won_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        opportunity_id=data.opportunity_id,
    )


async def on_opportunity_lost(session: AsyncSession, event: CloudEvent) -> None:
    data = OpportunityLost.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Opportunity lost",
        description=f"Opportunity lost: {data.reason}",
        outcome=f"Lost: {data.reason}",
        at=event.time,
        owner_id=data.lost_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        opportunity_id=data.opportunity_id,
    )


# --- tickets ----------------------------------------------------------------------------------------


async def on_ticket_created(session: AsyncSession, event: CloudEvent) -> None:
    data = TicketCreated.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Ticket created",
        description=f"Ticket {data.ticket_number} created: {data.subject}",
        at=event.time,
        owner_id=data.created_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        ticket_id=data.ticket_id,
    )


async def on_ticket_escalated(session: AsyncSession, event: CloudEvent) -> None:
    data = TicketEscalated.model_validate(event.data)
    how = " automatically" if data.automatic else ""
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Ticket escalated",
        description=(
            f"Ticket {data.ticket_number} escalated{how} to level {data.escalation_level}: {data.reason}"
        ),
        at=event.time,
        owner_id=data.escalated_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        ticket_id=data.ticket_id,
    )


async def on_ticket_resolved(session: AsyncSession, event: CloudEvent) -> None:
    data = TicketResolved.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Ticket resolved",
        description=f"Ticket {data.ticket_number} resolved: {data.resolution}",
        outcome=f"Resolved: {data.resolution}",
        at=_aware(data.resolved_at, event.time),
        owner_id=data.resolved_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        ticket_id=data.ticket_id,
    )


async def on_ticket_closed(session: AsyncSession, event: CloudEvent) -> None:
    data = TicketClosed.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Ticket closed",
        description=f"Ticket {data.ticket_number} closed",
        at=_aware(data.closed_at, event.time),
        owner_id=data.closed_by or SYSTEM_USER_ID,
        customer_id=data.customer_id,
        ticket_id=data.ticket_id,
    )


def _aware(moment: datetime | None, fallback: datetime) -> datetime:
    """A payload time with no zone is taken as UTC (the platform's convention); none at all, the event's."""
    if not isinstance(moment, datetime):
        return fallback
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --- campaigns --------------------------------------------------------------------------------------


async def on_campaign_target_added(session: AsyncSession, event: CloudEvent) -> None:
    data = CampaignTargetAdded.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Added to campaign",
        description=f"Customer added to campaign: {data.campaign_name}",
        at=event.time,
        owner_id=SYSTEM_USER_ID,
        customer_id=data.customer_id,
    )


async def on_campaign_member_converted(session: AsyncSession, event: CloudEvent) -> None:
    data = CampaignMemberConverted.model_validate(event.data)
    await notes.record_system_note(
        session,
        source_event_id=event.id,
        subject="Campaign conversion",
        description=f"Opportunity won from campaign: {data.campaign_name}",
        at=event.time,
        owner_id=SYSTEM_USER_ID,
        customer_id=data.customer_id,
        opportunity_id=data.opportunity_id,
    )


async def scrub_erased_customer(session: AsyncSession, customer_id: uuid.UUID) -> set[str]:
    """customer.erased: the text of the customer's activities (system notes included) goes; types,
    dates, statuses and owners stay, so counts and timelines keep their shape. The name also goes
    from other customers' system notes (a merge note on the survivor names the merged-away one)."""
    known = await customer_refs.get(session, customer_id)
    if known is not None and erasure.values_of(known.full_name):
        for column in (Activity.subject, Activity.description):
            await session.execute(
                sa.update(Activity)
                .where(Activity.system.is_(True), column.contains(known.full_name, autoescape=True))
                .values(
                    {
                        column: sa.func.replace(column, known.full_name, erasure.ERASED),
                        Activity.version: Activity.version + 1,
                        Activity.updated_at: datetime.now(UTC),
                    }
                )
            )
    return await erasure.scrub_columns(
        session,
        Activity,
        Activity.customer_id == customer_id,
        text=("subject", "description", "outcome", "next_steps"),
        json=("attachments", "links", "custom_fields"),
        also={"version": Activity.version + 1, "updated_at": datetime.now(UTC)},
    )
