"""The pipeline board (the seed's sales-pipeline kanban view): a column per active stage in sortOrder
with its label and colour, the first cards of each column (soonest expected close first), and a
summary per column (count, and totalAmount/avgAmount per currency).

Three queries whatever the number of columns: the active stages, the per-stage and per-currency sums
(unfiltered: from `stage_totals`; for an owner, team or customer: summed from their opportunities),
and the cards with their customer and owner names. On Postgres the cards come from a LATERAL subquery
per stage (each reads the first N entries of its index range); SQLite numbers the rows per stage with a
window function instead."""

import uuid
from decimal import Decimal

import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.directory import users
from crm_common.record_scope import ScopedCaller
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.models import Opportunity, OpportunityStage, StageTotal
from pipeline_svc.service.common import cents
from pipeline_svc.service.opportunities import in_scope
from pipeline_svc.service.stages import active_stages

_CARD_COLUMNS = (
    Opportunity.id,
    Opportunity.stage_id,
    Opportunity.title,
    Opportunity.customer_id,
    Opportunity.amount,
    Opportunity.currency,
    Opportunity.probability,
    Opportunity.expected_close_date,
    Opportunity.owner_id,
    Opportunity.status,
)
_CARD_ORDER = (Opportunity.expected_close_date.asc().nulls_last(), Opportunity.id)


def _decimal(value) -> Decimal:
    # Postgres hands NUMERIC back exact; SQLite as a float. Both are cents at heart.
    if value is None:
        return Decimal("0.00")
    return cents(value if isinstance(value, Decimal) else Decimal(str(value)))


def _cards_statement(dialect: str, stage_ids: list[uuid.UUID], filters: list, limit: int):
    if dialect == "postgresql":
        first = (
            select(*_CARD_COLUMNS)
            .where(Opportunity.stage_id == OpportunityStage.id, *filters)
            .order_by(*_CARD_ORDER)
            .limit(limit)
            .lateral("cards")
        )
        cards = first
        statement = (
            select(cards)
            .select_from(OpportunityStage)
            .join(cards, sa.true())
            .where(OpportunityStage.id.in_(stage_ids))
        )
    else:
        position = (
            func.row_number().over(partition_by=Opportunity.stage_id, order_by=_CARD_ORDER).label("position")
        )
        numbered = (
            select(*_CARD_COLUMNS, position)
            .where(Opportunity.stage_id.in_(stage_ids), *filters)
            .subquery("cards")
        )
        cards = numbered
        statement = select(*(numbered.c[c.key] for c in _CARD_COLUMNS)).where(numbered.c.position <= limit)
    return (
        statement.add_columns(
            customer_refs.refs.c.full_name.label("customer_name"), users.c.full_name.label("owner_name")
        )
        .outerjoin(customer_refs.refs, customer_refs.refs.c.id == cards.c.customer_id)
        .outerjoin(users, users.c.id == cards.c.owner_id)
    )


Summaries = dict[uuid.UUID, list[tuple[str, int, Decimal]]]


async def _summaries(session: AsyncSession, stage_ids: list[uuid.UUID]) -> Summaries:
    """Count and amount per stage and currency, from the totals the triggers keep (a few rows)."""
    rows = await session.execute(
        select(
            StageTotal.stage_id,
            StageTotal.currency,
            func.sum(StageTotal.opportunities).label("n"),
            func.sum(StageTotal.amount_cents).label("cents"),
        )
        .where(StageTotal.stage_id.in_(stage_ids))
        .group_by(StageTotal.stage_id, StageTotal.currency)
        .having(func.sum(StageTotal.opportunities) > 0)
    )
    summaries: Summaries = {}
    for row in rows:
        summaries.setdefault(row.stage_id, []).append(
            (row.currency, int(row.n), Decimal(int(row.cents)).scaleb(-2))
        )
    return summaries


def _without(totals: Summaries, archived: Summaries) -> Summaries:
    if not archived:
        return totals
    left: Summaries = {}
    for stage_id, rows in totals.items():
        gone = {currency: (n, amount) for currency, n, amount in archived.get(stage_id, [])}
        for currency, n, amount in rows:
            n_gone, amount_gone = gone.get(currency, (0, Decimal("0")))
            if n - n_gone > 0:
                left.setdefault(stage_id, []).append((currency, n - n_gone, amount - amount_gone))
    return left


async def _summaries_filtered(session: AsyncSession, stage_ids: list[uuid.UUID], filters: list) -> Summaries:
    """The same for one owner, team or customer: summed from their opportunities (an index range)."""
    rows = await session.execute(
        select(
            Opportunity.stage_id,
            Opportunity.currency,
            func.count().label("n"),
            func.sum(Opportunity.amount).label("total"),
        )
        .where(Opportunity.stage_id.in_(stage_ids), *filters)
        .group_by(Opportunity.stage_id, Opportunity.currency)
    )
    summaries: Summaries = {}
    for row in rows:
        summaries.setdefault(row.stage_id, []).append((row.currency, row.n, _decimal(row.total)))
    return summaries


async def board(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    cards_per_column: int = 25,
    caller: ScopedCaller | None = None,
) -> dict:
    stages = await active_stages(session)
    if not stages:
        return {"columns": [], "cardsPerColumn": cards_per_column}
    filters = []
    if owner_id is not None:
        filters.append(Opportunity.owner_id == owner_id)
    if team_id is not None:
        filters.append(Opportunity.team_id == team_id)
    if customer_id is not None:
        filters.append(Opportunity.customer_id == customer_id)
    if caller is not None and caller.read.level != "all":
        # Summed from the caller's opportunities, not the stage totals of everyone's.
        filters.append(in_scope(caller))
    stage_ids = [s.id for s in stages]

    if filters:
        filters.append(Opportunity.archived_at.is_(None))
        summaries = await _summaries_filtered(session, stage_ids, filters)
    else:
        # The triggers' totals count archived opportunities too: take those (few, indexed) out.
        archived = await _summaries_filtered(session, stage_ids, [Opportunity.archived_at.is_not(None)])
        summaries = _without(await _summaries(session, stage_ids), archived)
        filters = [Opportunity.archived_at.is_(None)]

    cards_by_stage: dict[uuid.UUID, list] = {}
    with_cards = [s for s in stage_ids if s in summaries]
    if with_cards:
        statement = _cards_statement(session.bind.dialect.name, with_cards, filters, cards_per_column)
        for row in await session.execute(statement):
            cards_by_stage.setdefault(row.stage_id, []).append(row)
        for rows in cards_by_stage.values():
            rows.sort(key=lambda r: (r.expected_close_date is None, r.expected_close_date or 0, str(r.id)))

    # The answer as plain JSON-ready data in the shape of `PipelineBoard` (camelCase): up to 200 cards
    # per column are serialised once, without building and re-validating a model per card.
    columns = []
    for stage in stages:
        totals = sorted(summaries.get(stage.id, []))
        count = sum(n for _, n, _ in totals)
        rows = cards_by_stage.get(stage.id, [])
        columns.append(
            {
                "stageId": stage.id,
                "label": stage.name,
                "color": stage.color,
                "sortOrder": stage.sort_order,
                "probability": stage.probability,
                "isWon": stage.is_won,
                "isLost": stage.is_lost,
                "requirements": stage.requirements or [],
                "summary": {
                    "count": count,
                    "totals": [
                        {
                            "currency": currency,
                            "count": n,
                            "totalAmount": total,
                            "avgAmount": cents(total / n) if n else Decimal("0.00"),
                        }
                        for currency, n, total in totals
                    ],
                },
                "cards": [
                    {
                        "id": c.id,
                        "title": c.title,
                        "customerId": c.customer_id,
                        "customerName": c.customer_name,
                        "amount": _decimal(c.amount),
                        "currency": c.currency,
                        "probability": c.probability,
                        "expectedCloseDate": c.expected_close_date,
                        "ownerId": c.owner_id,
                        "ownerName": c.owner_name,
                        "status": c.status,
                    }
                    for c in rows
                ],
                "hasMore": count > len(rows),
            }
        )
    return {"columns": columns, "cardsPerColumn": cards_per_column}
