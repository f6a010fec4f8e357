"""Opportunities: create (from the API or a lead conversion), read, list, edit."""

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.archive import ArchivedMode, archived_clause, check_not_archived
from crm_common.batch import check_external_id_free, external_id_conflict
from crm_common.changes import Changes, ChangesParams, changes_page
from crm_common.concurrency import check_version
from crm_common.directory import require_active_team, require_active_user, user_names, users
from crm_common.errors import not_found
from crm_common.events.outbox import add_events
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from pipeline_svc.events import publish as events
from pipeline_svc.models import (
    Opportunity,
    OpportunityProduct,
    OpportunityStage,
    OpportunityStatus,
)
from pipeline_svc.schemas import (
    OpportunityCreateRequest,
    OpportunityLineItemRead,
    OpportunityRead,
    OpportunityUpdateRequest,
)
from pipeline_svc.service.common import cents
from pipeline_svc.service.errors import OpportunityHasLineItems, OpportunityNotOpen
from pipeline_svc.service.stages import first_open_stage

SORTABLE = {
    "createdAt": Opportunity.created_at,
    "updatedAt": Opportunity.updated_at,
    "title": Opportunity.title,
    "amount": Opportunity.amount,
    "probability": Opportunity.probability,
    "expectedCloseDate": Opportunity.expected_close_date,
    "status": Opportunity.status,
}


def not_open(opportunity: Opportunity, what: str) -> OpportunityNotOpen:
    return OpportunityNotOpen(
        f"Opportunity {opportunity.id} is {opportunity.status}; only OPEN opportunities can {what}."
    )


def in_scope(caller: ScopedCaller, access: Access = "read"):
    """The opportunities `caller` may read (or write): owned by them, or by their teams' members, or
    of one of their teams."""
    return scope_clause(caller, Opportunity.owner_id, Opportunity.team_id, access=access)


async def load_opportunity(
    session: AsyncSession,
    opportunity_id: uuid.UUID,
    *,
    lock: bool = False,
    caller: ScopedCaller | None = None,
    write: bool = False,
    archived_ok: bool = False,
) -> Opportunity:
    """The opportunity with its line items (and their products). `lock` takes its row lock for the
    rest of the transaction (Postgres; SQLite transactions are serialised anyway), so concurrent
    actions on one opportunity queue instead of failing. Outside `caller`'s read scope it is a 404
    like a missing one; with `write`, outside their write scope a 403, and archived a 409 `ARCHIVED`
    (unless `archived_ok`: archive and restore)."""
    query = (
        select(Opportunity)
        .where(Opportunity.id == opportunity_id, in_scope(caller) if caller is not None else sa.true())
        .options(selectinload(Opportunity.line_items).selectinload(OpportunityProduct.product))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update(of=Opportunity)
    opportunity = (await session.execute(query)).scalar_one_or_none()
    if opportunity is None:
        raise not_found("opportunity", opportunity_id)
    if write and caller is not None:
        caller.check_write(opportunity.owner_id, opportunity.team_id)
    if write and not archived_ok:
        check_not_archived(opportunity, "opportunity")
    return opportunity


async def stage_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(OpportunityStage.id, OpportunityStage.name).where(OpportunityStage.id.in_(ids))
    )
    return {row.id: row.name for row in rows}


async def stage_name(session: AsyncSession, stage_id: uuid.UUID) -> str:
    return (await stage_names(session, {stage_id})).get(stage_id, "")


def _columns(opportunity: Opportunity) -> dict:
    """The opportunity's columns for its view. `status` is passed as it is: loaded from its VARCHAR
    column it is the plain string, which serialising as the enum would warn about; the view
    validates it into OpportunityStatus."""
    return {**opportunity.model_dump(exclude={"status"}), "status": opportunity.status}


def _line_item_view(item: OpportunityProduct, currency: str) -> OpportunityLineItemRead:
    return OpportunityLineItemRead(
        id=item.id,
        product_id=item.product_id,
        product_name=item.product.name,
        product_code=item.product.code,
        description=item.description,
        quantity=item.quantity,
        unit_price=item.unit_price,
        discount=item.discount,
        line_total=item.line_total,
        currency=currency,
    )


async def views(session: AsyncSession, opportunities: Sequence[Opportunity]) -> list[OpportunityRead]:
    stages = await stage_names(session, {o.stage_id for o in opportunities})
    customers = await customer_refs.names(session, (o.customer_id for o in opportunities))
    owners = await user_names(session, (o.owner_id for o in opportunities))
    return [
        OpportunityRead.model_validate(
            {
                **_columns(o),
                "stage_name": stages.get(o.stage_id, ""),
                "customer_name": customers.get(o.customer_id),
                "owner_name": owners.get(o.owner_id),
                "line_items": [_line_item_view(i, o.currency) for i in o.line_items],
            }
        )
        for o in opportunities
    ]


async def view(session: AsyncSession, opportunity: Opportunity) -> OpportunityRead:
    """One opportunity as the API answers it; its stage, customer and owner names in one query."""
    names = (
        await session.execute(
            select(
                select(OpportunityStage.name)
                .where(OpportunityStage.id == opportunity.stage_id)
                .scalar_subquery()
                .label("stage"),
                select(customer_refs.refs.c.full_name)
                .where(customer_refs.refs.c.id == opportunity.customer_id)
                .scalar_subquery()
                .label("customer"),
                select(users.c.full_name)
                .where(users.c.id == opportunity.owner_id)
                .scalar_subquery()
                .label("owner"),
            )
        )
    ).one()
    return OpportunityRead.model_validate(
        {
            **_columns(opportunity),
            "stage_name": names.stage or "",
            "customer_name": names.customer,
            "owner_name": names.owner,
            "line_items": [_line_item_view(i, opportunity.currency) for i in opportunity.line_items],
        }
    )


async def insert_opportunity(
    session: AsyncSession,
    *,
    stage: OpportunityStage,
    title: str,
    customer_id: uuid.UUID,
    owner_id: uuid.UUID,
    actor_id: uuid.UUID | None,
    opportunity_id: uuid.UUID | None = None,
    amount: Decimal | None = None,
    probability: int | None = None,
    **fields: Any,
) -> Opportunity:
    """Write a new OPEN opportunity and its `opportunity.created` event."""
    now = datetime.now(UTC)
    opportunity = Opportunity(
        title=title,
        customer_id=customer_id,
        owner_id=owner_id,
        stage_id=stage.id,
        status=OpportunityStatus.OPEN,
        amount=cents(amount) if amount is not None else Decimal("0.00"),
        amount_manual=amount is not None,
        probability=stage.probability if probability is None else probability,
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
        **fields,
    )
    if opportunity_id is not None:
        opportunity.id = opportunity_id
    session.add(opportunity)
    try:
        await session.flush()
    except IntegrityError as exc:
        if problem := external_id_conflict(exc, "opportunities", "opportunity", opportunity.external_id):
            raise problem from None
        raise
    await add_events(session, events.opportunity_created(opportunity, stage.name, by=actor_id))
    return opportunity


async def _check_people(
    session: AsyncSession, *, owner_id: uuid.UUID | None, team_id: uuid.UUID | None, actor_id: uuid.UUID
) -> None:
    if owner_id is not None and owner_id != actor_id:
        await require_active_user(session, owner_id, field="ownerId")
    if team_id is not None:
        await require_active_team(session, team_id, field="teamId")


async def create_opportunity(
    session: AsyncSession,
    *,
    data: OpportunityCreateRequest,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    # A merged customer's survivor takes the opportunity (the rule everywhere: crm_common.customer_refs).
    customer = await customer_refs.require(session, data.customer_id, field="customerId")
    await _check_people(session, owner_id=data.owner_id, team_id=data.team_id, actor_id=actor_id)
    await check_external_id_free(session, Opportunity, "opportunity", data.external_id)
    if caller is not None:  # a new opportunity is the caller's unless given to someone in their write scope
        caller.check_write(data.owner_id or actor_id, data.team_id)
    stage = await first_open_stage(session)
    opportunity = await insert_opportunity(
        session,
        stage=stage,
        title=data.title,
        customer_id=customer.id,
        owner_id=data.owner_id or actor_id,
        actor_id=actor_id,
        amount=data.amount,
        description=data.description,
        currency=data.currency,
        expected_close_date=data.expected_close_date,
        team_id=data.team_id,
        competitors=data.competitors,
        custom_fields=data.custom_fields,
        external_id=data.external_id,
    )
    return await load_opportunity(session, opportunity.id)


def computed_amount(opportunity: Opportunity) -> Decimal:
    return cents(sum((i.line_total for i in opportunity.line_items), Decimal("0")))


def change_record(changes: dict[str, Any]) -> dict[str, Any]:
    """The `changes` of an `opportunity.updated` event: camelCase field -> new value as JSON."""
    return {to_camel(k): to_jsonable_python(v) for k, v in changes.items()}


async def update_opportunity(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    data: OpportunityUpdateRequest,
    if_match: str | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    opportunity = await load_opportunity(session, opportunity_id, lock=True, caller=caller, write=True)
    check_version(opportunity.version, if_match=if_match, body_version=data.version)
    wanted = data.model_dump(exclude_unset=True, exclude={"version"})
    if opportunity.status != OpportunityStatus.OPEN and wanted.keys() & {"amount", "currency", "probability"}:
        raise not_open(opportunity, "change amount, currency or probability")
    if "currency" in wanted and wanted["currency"] != opportunity.currency and opportunity.line_items:
        raise OpportunityHasLineItems(
            "Line items are priced in the opportunity's currency; remove them before changing it."
        )
    await _check_people(
        session,
        owner_id=wanted.get("owner_id") if wanted.get("owner_id") != opportunity.owner_id else None,
        team_id=wanted.get("team_id") if wanted.get("team_id") != opportunity.team_id else None,
        actor_id=actor_id,
    )
    if "amount" in wanted:
        # A number fixes the amount by hand; null hands it back to the line items.
        amount = wanted["amount"]
        wanted["amount_manual"] = amount is not None
        wanted["amount"] = cents(amount) if amount is not None else computed_amount(opportunity)
    changes = {k: v for k, v in wanted.items() if getattr(opportunity, k) != v}
    if not changes:
        return opportunity
    if "external_id" in changes:
        await check_external_id_free(
            session, Opportunity, "opportunity", changes["external_id"], other_than=opportunity.id
        )
    for field, value in changes.items():
        setattr(opportunity, field, value)
    opportunity.updated_at = datetime.now(UTC)
    try:
        await session.flush()
    except IntegrityError as exc:
        if problem := external_id_conflict(exc, "opportunities", "opportunity", opportunity.external_id):
            raise problem from None
        raise
    name = await stage_name(session, opportunity.stage_id)
    await add_events(
        session,
        events.opportunity_updated(opportunity, name, changes=change_record(changes), by=actor_id),
    )
    return opportunity


async def changes_feed(session: AsyncSession, params: ChangesParams, *, caller: ScopedCaller) -> Changes:
    """Opportunities the caller may read changed after the cursor (archived ones too, with
    `archivedAt`; a merge re-points them; purged ones as tombstones)."""
    query = (
        select(Opportunity)
        .where(in_scope(caller))
        .options(selectinload(Opportunity.line_items).selectinload(OpportunityProduct.product))
    )
    return await changes_page(session, query, "opportunity", params, lambda rows: views(session, rows))


async def list_opportunities(
    session: AsyncSession,
    *,
    caller: ScopedCaller,
    params: PageParams,
    q: str | None = None,
    customer_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
    stage_id: uuid.UUID | None = None,
    status: Sequence[str] = (),
    close_from: date | None = None,
    close_to: date | None = None,
    archived: ArchivedMode = "exclude",
) -> tuple[list[Opportunity], int]:
    query = (
        select(Opportunity)
        .where(in_scope(caller), archived_clause(Opportunity.archived_at, archived))
        .options(selectinload(Opportunity.line_items).selectinload(OpportunityProduct.product))
    )
    if q:
        query = query.where(func.lower(Opportunity.title).like(f"%{q.lower()}%"))
    if customer_id:
        query = query.where(Opportunity.customer_id == customer_id)
    if owner_id:
        query = query.where(Opportunity.owner_id == owner_id)
    if team_id:
        query = query.where(Opportunity.team_id == team_id)
    if stage_id:
        query = query.where(Opportunity.stage_id == stage_id)
    if status:
        query = query.where(Opportunity.status.in_(status))
    if close_from:
        query = query.where(Opportunity.expected_close_date >= close_from)
    if close_to:
        query = query.where(Opportunity.expected_close_date <= close_to)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Opportunity.created_at.desc(), Opportunity.id]))
    return await paginate(session, query, params)
