"""The local customer read model, targets (members), leads, and re-pointing on customer.merged."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.contracts.customer import CustomerCreated, CustomerUpdated
from crm_common.db import insert_for
from crm_common.events.envelope import CloudEvent
from crm_common.events.inbox import Upsert
from crm_common.events.outbox import add_events
from crm_common.record_scope import RecordScope
from sqlalchemy.ext.asyncio import AsyncSession

from campaign_svc.events import publish as events
from campaign_svc.models import (
    Campaign,
    CampaignConversion,
    CampaignInteraction,
    CampaignLead,
    CampaignStatus,
    CampaignTarget,
)
from campaign_svc.schemas import TargetRefused
from campaign_svc.service.errors import CampaignClosed, TargetNotFound
from campaign_svc.service.tracking import COUNTER_OF, STEP_FIELDS, add_to_counters, recount, status_of

COUNTED = tuple(COUNTER_OF)

INACTIVE = "INACTIVE"
CHUNK = 500


def chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- read model ------------------------------------------------------------------------------------


async def add_lead(
    session: AsyncSession, campaign_id: uuid.UUID, customer_id: uuid.UUID, at: datetime
) -> None:
    exists = (await session.execute(sa.select(Campaign.id).where(Campaign.id == campaign_id))).first()
    if exists is None:
        return  # not a campaign of ours: nothing to count
    customer_id = await customer_refs.resolve(session, customer_id)
    await session.execute(
        insert_for(session, CampaignLead)
        .values(id=uuid.uuid4(), campaign_id=campaign_id, customer_id=customer_id, created_at=at)
        .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id"])
    )


async def created_without_lead(event: CloudEvent) -> Upsert | None:
    """customer.created's whole effect when the customer came from no campaign; None otherwise."""
    if CustomerCreated.model_validate(event.data).source_campaign_id is not None:
        return None
    return await customer_refs.created_upsert(event)


async def on_customer_created(session: AsyncSession, event: CloudEvent) -> None:
    await customer_refs.on_customer_created(session, event)
    data = CustomerCreated.model_validate(event.data)
    if data.source_campaign_id is not None:
        await add_lead(session, data.source_campaign_id, data.customer_id, event.time)


async def on_customer_updated(session: AsyncSession, event: CloudEvent) -> None:
    await customer_refs.on_customer_updated(session, event)
    data = CustomerUpdated.model_validate(event.data)
    source = data.changes.get("sourceCampaignId")
    if source:
        await add_lead(session, uuid.UUID(str(source)), data.customer_id, event.time)


async def repoint_merged(session: AsyncSession, moves: customer_refs.Moves, event: CloudEvent) -> None:
    for old, survivor in moves.items():
        await repoint(session, old, survivor)


async def repoint(session: AsyncSession, secondary: uuid.UUID, primary: uuid.UUID) -> None:
    """Targets, leads, interactions and conversions of `secondary` move to `primary`; where both were
    members of a campaign the rows are merged (each step keeps its earliest time, so the furthest
    status wins)."""
    affected: set[uuid.UUID] = set()
    # Lock the campaigns the secondary belongs to first (id order), as interaction batches do.
    campaign_ids = set(
        (
            await session.execute(
                sa.select(CampaignTarget.campaign_id).where(CampaignTarget.customer_id == secondary)
            )
        ).scalars()
    )
    if campaign_ids:
        await session.execute(
            sa.select(Campaign.id)
            .where(Campaign.id.in_(campaign_ids))
            .order_by(Campaign.id)
            .with_for_update()
        )
    rows = (
        (
            await session.execute(
                sa.select(CampaignTarget).where(CampaignTarget.customer_id.in_((secondary, primary)))
            )
        )
        .scalars()
        .all()
    )
    by_campaign: dict[uuid.UUID, dict[uuid.UUID, CampaignTarget]] = {}
    for row in rows:
        by_campaign.setdefault(row.campaign_id, {})[row.customer_id] = row
    for campaign_id, pair in by_campaign.items():
        old = pair.get(secondary)
        if old is None:
            continue
        affected.add(campaign_id)
        keep = pair.get(primary)
        if keep is None:
            old.customer_id = primary
            continue
        for field in (*STEP_FIELDS, "converted_at"):
            values = [v for v in (getattr(keep, field), getattr(old, field)) if v is not None]
            setattr(keep, field, min(values) if values else None)
        keep.added_at = min(keep.added_at, old.added_at)
        lasts = [v for v in (keep.last_interaction_at, old.last_interaction_at) if v is not None]
        keep.last_interaction_at = max(lasts) if lasts else None
        keep.status = status_of(keep)
        keep.updated_at = datetime.now(UTC)
        await session.delete(old)
    await session.flush()
    # Leads: the primary's row wins a duplicate (the earlier time is kept).
    leads = (
        (
            await session.execute(
                sa.select(CampaignLead).where(CampaignLead.customer_id.in_((secondary, primary)))
            )
        )
        .scalars()
        .all()
    )
    lead_pairs: dict[uuid.UUID, dict[uuid.UUID, CampaignLead]] = {}
    for lead in leads:
        lead_pairs.setdefault(lead.campaign_id, {})[lead.customer_id] = lead
    for pair in lead_pairs.values():
        old = pair.get(secondary)
        if old is None:
            continue
        keep = pair.get(primary)
        if keep is None:
            old.customer_id = primary
        else:
            keep.created_at = min(keep.created_at, old.created_at)
            await session.delete(old)
    await session.flush()
    for table in (CampaignInteraction, CampaignConversion):
        await session.execute(
            sa.update(table)
            .where(table.customer_id == secondary)
            .values(customer_id=primary)
            .execution_options(synchronize_session=False)
        )
    for campaign_id in sorted(affected):
        await recount(session, campaign_id)
    await add_events(session, *(events.member_repointed(c, secondary, primary) for c in sorted(affected)))


# --- targets ---------------------------------------------------------------------------------------


def closed(campaign: Campaign) -> CampaignClosed:
    return CampaignClosed(f"Campaign is {campaign.status}: its targets can no longer change.")


async def add_targets(
    session: AsyncSession,
    campaign: Campaign,
    customer_ids: list[uuid.UUID],
    *,
    statuses: dict[uuid.UUID, str] | None = None,
    scope: RecordScope | None = None,
) -> tuple[list[uuid.UUID], list[uuid.UUID], list[TargetRefused]]:
    """Add members; refused: unknown (not yet seen here) or INACTIVE customers. `statuses` (from a
    segment evaluated by customer-svc) stand in for the read model where given. `scope` is the
    caller's customer read scope: a customer outside it (or merged into one outside it) is refused
    exactly as an unknown one, so nothing tells them apart. The caller holds the campaign's row lock."""
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        raise closed(campaign)
    wanted = list(dict.fromkeys(customer_ids))
    known = {}
    for part in chunks(wanted):
        known.update(await customer_refs.rows_by_id(session, part))
    # Not heard of yet: customer-svc is asked (a customer created a moment ago is no reason to refuse).
    unheard = [cid for cid in wanted if cid not in known and not (statuses and cid in statuses)]
    if unheard:
        missing = await customer_refs.learn_many(session, unheard)
        known.update(await customer_refs.rows_by_id(session, [c for c in unheard if c not in missing]))
    merged = await customer_refs.survivors(session, wanted)
    hidden = await customer_refs.outside_scope(session, scope, [*known, *merged.values()]) if scope else set()
    survivors = await customer_refs.rows_by_id(session, set(merged.values()))
    refused: list[TargetRefused] = []
    resolved: list[uuid.UUID] = []
    for cid in wanted:
        row = known.get(cid)
        status = (statuses or {}).get(cid) or (row.status if row else None)
        unknown = row is None and (statuses is None or cid not in statuses)
        if unknown or cid in hidden or merged.get(cid) in hidden:
            refused.append(
                TargetRefused(customer_id=cid, code="UNKNOWN_CUSTOMER", message="no such customer")
            )
            continue
        if cid in merged:  # redirected to the survivor (the rule everywhere: crm_common.customer_refs)
            srow = survivors.get(merged[cid])
            if srow is not None and srow.status == INACTIVE:
                refused.append(
                    TargetRefused(
                        customer_id=cid, code="CUSTOMER_INACTIVE", message="merged into an inactive customer"
                    )
                )
                continue
            resolved.append(merged[cid])
            continue
        if status == INACTIVE:
            refused.append(
                TargetRefused(customer_id=cid, code="CUSTOMER_INACTIVE", message="customer is INACTIVE")
            )
            continue
        resolved.append(cid)
    resolved = list(dict.fromkeys(resolved))
    existing: set[uuid.UUID] = set()
    for part in chunks(resolved):
        existing.update(
            (
                await session.execute(
                    sa.select(CampaignTarget.customer_id).where(
                        CampaignTarget.campaign_id == campaign.id, CampaignTarget.customer_id.in_(part)
                    )
                )
            ).scalars()
        )
    added = [cid for cid in resolved if cid not in existing]
    already = [cid for cid in resolved if cid in existing]
    now = datetime.now(UTC)
    for part in chunks(added, 1000):
        await session.execute(
            sa.insert(CampaignTarget),
            [
                {
                    "id": uuid.uuid4(),
                    "campaign_id": campaign.id,
                    "customer_id": cid,
                    "status": "TARGETED",
                    "added_at": now,
                    "updated_at": now,
                }
                for cid in part
            ],
        )
    if added:
        await add_events(session, *(events.target_added(campaign, cid) for cid in added))
        await session.execute(
            sa.update(Campaign)
            .where(Campaign.id == campaign.id)
            .values(target_count=Campaign.target_count + len(added))
            .execution_options(synchronize_session=False)
        )
    return added, already, refused


async def remember_customers(
    session: AsyncSession, rows: dict[uuid.UUID, tuple[str | None, str | None]]
) -> None:
    """Customers seen in a segment evaluation but not yet in the read model (their created event may
    still be on its way): recorded with version 0, so any event overrides them."""
    await customer_refs.ensure_many(
        session, {cid: {"full_name": name, "status": status} for cid, (name, status) in rows.items()}
    )


async def remove_target(session: AsyncSession, campaign: Campaign, customer_id: uuid.UUID) -> None:
    if campaign.status in (CampaignStatus.COMPLETED, CampaignStatus.CANCELLED):
        raise closed(campaign)
    customer_id = await customer_refs.resolve(session, customer_id)
    t = CampaignTarget.__table__
    removed = (
        await session.execute(
            sa.delete(t)
            .where(t.c.campaign_id == campaign.id, t.c.customer_id == customer_id)
            .returning(*(t.c[f] for f in COUNTED))
        )
    ).first()
    if removed is None:
        raise TargetNotFound(f"Customer {customer_id} is not a target of this campaign.")
    # The counters lose what this member had reached (the campaign's row lock is held).
    reached = {f: -1 for f in COUNTED if removed._mapping[f] is not None}
    await add_to_counters(session, campaign.id, reached)
    await session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(target_count=Campaign.target_count - 1)
        .execution_options(synchronize_session=False)
    )
