"""The forecast: open opportunities expected to close in a period, aggregated in SQL per currency and
stage, with the seed's figures (totalValue, weightedValue, bestCase, mostLikely, worstCase, byStage,
confidence). Amounts of different currencies are never added together."""

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from crm_common.record_scope import ScopedCaller
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.models import Opportunity, OpportunityStage, OpportunityStatus
from pipeline_svc.schemas import ForecastCurrency, ForecastDateRange, ForecastStage, SalesForecast
from pipeline_svc.service.common import HUNDRED, cents
from pipeline_svc.service.opportunities import in_scope

# The seed's buckets: bestCase from probability 75, mostLikely from 25, worstCase below.
BEST_CASE_FROM = 75
MOST_LIKELY_FROM = 25


def period_range(period: str, today: date) -> tuple[date, date]:
    """The calendar month, quarter or year containing `today`, both ends inclusive."""
    if period == "month":
        start = today.replace(day=1)
        end = _month_end(today.year, today.month)
    elif period == "quarter":
        first_month = (today.month - 1) // 3 * 3 + 1
        start = date(today.year, first_month, 1)
        end = _month_end(today.year, first_month + 2)
    elif period == "year":
        start, end = date(today.year, 1, 1), date(today.year, 12, 31)
    else:
        raise ValueError(period)
    return start, end


def _month_end(year: int, month: int) -> date:
    if month == 12:
        return date(year, 12, 31)
    return date.fromordinal(date(year, month + 1, 1).toordinal() - 1)


def confidence(count: int) -> int:
    return min(95, max(10, count * 5)) if count > 0 else 0


def _decimal(value) -> Decimal:
    # SQLite hands sums back as floats; Postgres as exact decimals. Both are cents at heart.
    return Decimal(str(value)) if value is not None else Decimal("0")


@dataclass
class _Totals:
    count: int = 0
    total: Decimal = Decimal("0")
    weighted100: Decimal = Decimal("0")
    best: Decimal = Decimal("0")
    likely: Decimal = Decimal("0")
    worst: Decimal = Decimal("0")
    stages: list = field(default_factory=list)


async def forecast(
    session: AsyncSession,
    *,
    period: str,
    start: date,
    end: date,
    owner_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    caller: ScopedCaller | None = None,
) -> SalesForecast:
    amount, probability = Opportunity.amount, Opportunity.probability
    zero = Decimal("0")
    query = (
        select(
            Opportunity.currency,
            Opportunity.stage_id,
            OpportunityStage.name.label("stage_name"),
            OpportunityStage.sort_order,
            func.count().label("n"),
            func.sum(amount).label("total"),
            func.sum(amount * probability).label("weighted100"),
            func.sum(case((probability >= BEST_CASE_FROM, amount), else_=zero)).label("best"),
            func.sum(
                case(
                    (and_(probability >= MOST_LIKELY_FROM, probability < BEST_CASE_FROM), amount),
                    else_=zero,
                )
            ).label("likely"),
            func.sum(case((probability < MOST_LIKELY_FROM, amount), else_=zero)).label("worst"),
        )
        .where(
            Opportunity.status == OpportunityStatus.OPEN,
            Opportunity.archived_at.is_(None),
            Opportunity.expected_close_date >= start,
            Opportunity.expected_close_date <= end,
        )
        .join(OpportunityStage, OpportunityStage.id == Opportunity.stage_id)
        .group_by(
            Opportunity.currency, Opportunity.stage_id, OpportunityStage.name, OpportunityStage.sort_order
        )
    )
    if owner_id is not None:
        query = query.where(Opportunity.owner_id == owner_id)
    if team_id is not None:
        query = query.where(Opportunity.team_id == team_id)
    if caller is not None:
        query = query.where(in_scope(caller))
    rows = (await session.execute(query)).all()

    per_currency: dict[str, _Totals] = {}
    for row in rows:
        totals = per_currency.setdefault(row.currency, _Totals())
        weighted100 = _decimal(row.weighted100)
        totals.count += row.n
        totals.total += _decimal(row.total)
        totals.weighted100 += weighted100
        totals.best += _decimal(row.best)
        totals.likely += _decimal(row.likely)
        totals.worst += _decimal(row.worst)
        totals.stages.append(
            (
                (row.sort_order, row.stage_name),
                ForecastStage(
                    stage_id=row.stage_id,
                    stage_name=row.stage_name,
                    count=row.n,
                    total_value=cents(_decimal(row.total)),
                    weighted_value=cents(weighted100 / HUNDRED),
                ),
            )
        )

    currencies = [
        ForecastCurrency(
            currency=currency,
            total_opportunities=t.count,
            total_value=cents(t.total),
            weighted_value=cents(t.weighted100 / HUNDRED),
            best_case=cents(t.best),
            most_likely=cents(t.likely),
            worst_case=cents(t.worst),
            by_stage=[s for _, s in sorted(t.stages, key=lambda pair: pair[0])],
            confidence=confidence(t.count),
        )
        for currency, t in sorted(per_currency.items())
    ]
    count = sum(c.total_opportunities for c in currencies)
    return SalesForecast(
        period=period,
        date_range=ForecastDateRange(start=start, end=end),
        owner_id=owner_id,
        team_id=team_id,
        total_opportunities=count,
        confidence=confidence(count),
        currencies=currencies,
    )
