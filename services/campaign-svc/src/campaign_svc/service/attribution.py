"""Conversions and revenue attribution from opportunity.won, and the metrics of a campaign.

Every campaign in which the winning customer is a target or a lead, that started at most
`attribution_window_days` before the win and was touched no later than the win, records a
conversion (its member becomes CONVERTED). The revenue is credited to ONE of them, chosen by the
attribution model when metrics are read: FIRST_TOUCH the campaign with the earliest first touch,
LAST_TOUCH the one with the latest touch (ties: the campaign id). Amounts stay per currency."""

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.contracts.pipeline import OpportunityWon
from crm_common.db import insert_for
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from campaign_svc.events import publish as events
from campaign_svc.models import Campaign, CampaignConversion, CampaignLead, CampaignStatus, CampaignTarget
from campaign_svc.schemas import CampaignMetrics, CurrencyAmount, FunnelStep
from campaign_svc.service.tracking import STEP_FIELDS, add_to_counters, status_of

MODELS = ("FIRST_TOUCH", "LAST_TOUCH")
CENT = Decimal("0.01")


def make_won_handler(window_days: int):
    async def on_opportunity_won(session: AsyncSession, event: CloudEvent) -> None:
        await apply_won(session, event, window_days=window_days)

    return on_opportunity_won


def _touches(target: CampaignTarget | None, lead: CampaignLead | None) -> tuple[datetime, datetime]:
    firsts, lasts = [], []
    if target is not None:
        steps = [getattr(target, f) for f in STEP_FIELDS if getattr(target, f) is not None]
        firsts.append(min(steps) if steps else target.added_at)
        lasts.append(target.last_interaction_at or target.added_at)
    if lead is not None:
        firsts.append(lead.created_at)
        lasts.append(lead.created_at)
    return min(firsts), max(lasts)


async def apply_won(session: AsyncSession, event: CloudEvent, *, window_days: int) -> None:
    data = OpportunityWon.model_validate(event.data)
    won_at = event.time
    sequence = event.sequence or 0
    customer_id = await customer_refs.resolve(session, data.customer_id)
    # Lock the campaigns first (id order), as interaction batches do, then read the members.
    candidates = set(
        (
            await session.execute(
                sa.select(CampaignTarget.campaign_id).where(CampaignTarget.customer_id == customer_id)
            )
        ).scalars()
    ) | set(
        (
            await session.execute(
                sa.select(CampaignLead.campaign_id).where(CampaignLead.customer_id == customer_id)
            )
        ).scalars()
    )
    if not candidates:
        return
    campaigns = (
        (
            await session.execute(
                sa.select(Campaign)
                .where(Campaign.id.in_(candidates))
                .order_by(Campaign.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    targets = {
        t.campaign_id: t
        for t in (
            await session.execute(sa.select(CampaignTarget).where(CampaignTarget.customer_id == customer_id))
        ).scalars()
    }
    leads = {
        lead.campaign_id: lead
        for lead in (
            await session.execute(sa.select(CampaignLead).where(CampaignLead.customer_id == customer_id))
        ).scalars()
    }
    window = timedelta(days=window_days)
    for campaign in campaigns:
        start = campaign.start_date or campaign.activated_at
        if start is None or campaign.status in (CampaignStatus.PLANNING, CampaignStatus.CANCELLED):
            continue
        if not (start <= won_at <= start + window):
            continue
        target, lead = targets.get(campaign.id), leads.get(campaign.id)
        first, last = _touches(target, lead)
        if first > won_at:
            continue  # touched only after the deal was won
        last = min(last, won_at)
        values = {
            "customer_id": customer_id,
            "amount": data.amount,
            "currency": data.currency,
            "won_at": won_at,
            "first_touch_at": first,
            "last_touch_at": last,
            "sequence": sequence,
        }
        inserted = await session.execute(
            insert_for(session, CampaignConversion)
            .values(id=uuid.uuid4(), opportunity_id=data.opportunity_id, campaign_id=campaign.id, **values)
            .on_conflict_do_nothing(index_elements=["opportunity_id", "campaign_id"])
        )
        is_new = inserted.rowcount == 1
        if not is_new:  # a newer state of the same opportunity replaces an older one
            await session.execute(
                sa.update(CampaignConversion)
                .where(
                    CampaignConversion.opportunity_id == data.opportunity_id,
                    CampaignConversion.campaign_id == campaign.id,
                    CampaignConversion.sequence < sequence,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        newly_converted = False
        if target is not None and (target.converted_at is None or won_at < target.converted_at):
            newly_converted = target.converted_at is None
            target.converted_at = won_at
            target.status = status_of(target)
            await session.flush()
            if newly_converted:
                await add_to_counters(session, campaign.id, {"converted_at": 1})
        if newly_converted or (target is None and is_new):
            await add_events(
                session, events.member_converted(campaign.id, campaign.name, customer_id, data.opportunity_id)
            )


def _rate(count: int, base: int) -> float | None:
    return round(count / base, 4) if base else None


async def metrics(
    session: AsyncSession, campaign: Campaign, *, model: str, window_days: int
) -> CampaignMetrics:
    leads = (
        await session.execute(
            sa.select(sa.func.count())
            .select_from(CampaignLead)
            .where(CampaignLead.campaign_id == campaign.id)
        )
    ).scalar_one()
    # Every conversion row of the opportunities this campaign took part in: the model picks a winner.
    mine = sa.select(CampaignConversion.opportunity_id).where(CampaignConversion.campaign_id == campaign.id)
    rows = (
        (
            await session.execute(
                sa.select(CampaignConversion).where(CampaignConversion.opportunity_id.in_(mine))
            )
        )
        .scalars()
        .all()
    )
    by_opp: dict[uuid.UUID, list[CampaignConversion]] = {}
    for row in rows:
        by_opp.setdefault(row.opportunity_id, []).append(row)
    revenue: dict[str, Decimal] = {}
    credited = 0
    for conv in by_opp.values():
        if model == "LAST_TOUCH":
            winner = max(conv, key=lambda c: (c.last_touch_at, str(c.campaign_id)))
        else:
            winner = min(conv, key=lambda c: (c.first_touch_at, str(c.campaign_id)))
        if winner.campaign_id == campaign.id:
            credited += 1
            revenue[winner.currency] = revenue.get(winner.currency, Decimal("0")) + Decimal(winner.amount)
    cost = Decimal(campaign.actual_cost)
    own_revenue = revenue.get(campaign.currency, Decimal("0"))
    c = campaign
    return CampaignMetrics(
        campaign_id=c.id,
        attribution_model=model,
        attribution_window_days=window_days,
        targets=c.target_count,
        sent=c.sent_count,
        delivered=FunnelStep(count=c.delivered_count, rate=_rate(c.delivered_count, c.sent_count)),
        bounced=FunnelStep(count=c.bounced_count, rate=_rate(c.bounced_count, c.sent_count)),
        opened=FunnelStep(count=c.open_count, rate=_rate(c.open_count, c.delivered_count)),
        clicked=FunnelStep(count=c.click_count, rate=_rate(c.click_count, c.delivered_count)),
        responded=FunnelStep(count=c.response_count, rate=_rate(c.response_count, c.delivered_count)),
        unsubscribed=FunnelStep(
            count=c.unsubscribed_count, rate=_rate(c.unsubscribed_count, c.delivered_count)
        ),
        converted=FunnelStep(count=c.conversion_count, rate=_rate(c.conversion_count, c.target_count)),
        leads=leads,
        expected_leads=c.expected_leads,
        leads_vs_expected=_rate(leads, c.expected_leads or 0),
        currency=c.currency,
        actual_cost=cost.quantize(CENT),
        budget=c.budget,
        cost_per_lead=(cost / leads).quantize(CENT) if leads else None,
        attributed_revenue=[
            CurrencyAmount(currency=k, amount=v.quantize(CENT)) for k, v in sorted(revenue.items())
        ],
        attributed_conversions=credited,
        roi=round(float((own_revenue - cost) / cost), 4) if cost > 0 else None,
        expected_revenue=c.expected_revenue,
        revenue_vs_expected=round(float(own_revenue / c.expected_revenue), 4) if c.expected_revenue else None,
    )
