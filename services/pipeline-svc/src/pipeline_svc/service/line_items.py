"""Line items (OpportunityProduct): product, quantity, unit price, discount, line total.

The rule for the amount: while the amount was not set by hand (`amountManual` false), every change to
the line items recomputes it as the sum of the line totals; once a client sets an amount, line item
changes leave it alone until the client sends `amount: null` again.
"""

import uuid
from datetime import UTC, datetime

from crm_common.concurrency import check_optional_version
from crm_common.errors import FieldError, unique_violation
from crm_common.events.outbox import add_events
from crm_common.record_scope import ScopedCaller
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.events import publish as events
from pipeline_svc.models import Opportunity, OpportunityProduct, OpportunityStatus, Product, ProductStatus
from pipeline_svc.schemas import OpportunityLineItemCreateRequest, OpportunityLineItemUpdateRequest
from pipeline_svc.service.common import line_total
from pipeline_svc.service.errors import (
    CurrencyMismatch,
    LineItemExists,
    LineItemNotFound,
    ProductNotActive,
    UnknownProduct,
)
from pipeline_svc.service.opportunities import (
    change_record,
    computed_amount,
    load_opportunity,
    not_open,
    stage_name,
)


def _line_exists(product: Product) -> LineItemExists:
    return LineItemExists(
        f"Product {product.code!r} is already on this opportunity; change its quantity instead.",
        errors=[FieldError(field="productId", message="already a line item", code="unique")],
    )


def _find(opportunity: Opportunity, product_id: uuid.UUID) -> OpportunityProduct:
    for item in opportunity.line_items:
        if item.product_id == product_id:
            return item
    raise LineItemNotFound(f"Product {product_id} is not a line item of opportunity {opportunity.id}.")


async def _open_opportunity(
    session: AsyncSession, opportunity_id: uuid.UUID, if_match: str | None, caller: ScopedCaller | None
) -> Opportunity:
    opportunity = await load_opportunity(session, opportunity_id, lock=True, caller=caller, write=True)
    check_optional_version(opportunity.version, if_match=if_match)
    if opportunity.status != OpportunityStatus.OPEN:
        raise not_open(opportunity, "change their line items")
    return opportunity


async def _changed(session: AsyncSession, opportunity: Opportunity, *, actor_id: uuid.UUID) -> Opportunity:
    """Recompute the amount (unless set by hand), bump the version, publish `opportunity.updated`."""
    changes: dict = {"line_items": len(opportunity.line_items)}
    if not opportunity.amount_manual:
        amount = computed_amount(opportunity)
        if amount != opportunity.amount:
            opportunity.amount = amount
            changes["amount"] = amount
    opportunity.updated_at = datetime.now(UTC)
    try:
        await session.flush()
    except IntegrityError as exc:
        if unique_violation(exc) == "uq_opportunity_products":
            raise LineItemExists("That product is already on this opportunity.") from None
        raise
    name = await stage_name(session, opportunity.stage_id)
    await add_events(
        session,
        events.opportunity_updated(opportunity, name, changes=change_record(changes), by=actor_id),
    )
    return opportunity


async def add_line_item(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    data: OpportunityLineItemCreateRequest,
    if_match: str | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    opportunity = await _open_opportunity(session, opportunity_id, if_match, caller)
    product = await session.get(Product, data.product_id)
    if product is None:
        raise UnknownProduct(
            f"Product {data.product_id} does not exist.",
            errors=[FieldError(field="productId", message="unknown product", code="unknown_product")],
        )
    if product.status != ProductStatus.ACTIVE:
        raise ProductNotActive(
            f"Product {product.code!r} is {product.status}; only ACTIVE products can be sold.",
            errors=[
                FieldError(
                    field="productId", message=f"product is {product.status}", code="product_not_active"
                )
            ],
        )
    if any(item.product_id == product.id for item in opportunity.line_items):
        raise _line_exists(product)
    unit_price = data.unit_price
    if unit_price is None:
        if product.currency != opportunity.currency:
            raise CurrencyMismatch(
                f"Product {product.code!r} is priced in {product.currency} and the opportunity is in "
                f"{opportunity.currency}; give a unitPrice in {opportunity.currency}.",
                errors=[
                    FieldError(
                        field="unitPrice",
                        message=f"required: the product is priced in {product.currency}",
                        code="currency_mismatch",
                    )
                ],
            )
        unit_price = product.price
    now = datetime.now(UTC)
    item = OpportunityProduct(
        opportunity_id=opportunity.id,
        product_id=product.id,
        description=data.description,
        quantity=data.quantity,
        unit_price=unit_price,
        discount=data.discount,
        line_total=line_total(data.quantity, unit_price, data.discount),
        created_at=now,
        updated_at=now,
    )
    item.product = product
    opportunity.line_items.append(item)
    return await _changed(session, opportunity, actor_id=actor_id)


async def update_line_item(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    product_id: uuid.UUID,
    data: OpportunityLineItemUpdateRequest,
    if_match: str | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    opportunity = await _open_opportunity(session, opportunity_id, if_match, caller)
    item = _find(opportunity, product_id)
    changes = data.model_dump(exclude_unset=True)
    if not changes:
        return opportunity
    for field, value in changes.items():
        setattr(item, field, value)
    item.line_total = line_total(item.quantity, item.unit_price, item.discount)
    item.updated_at = datetime.now(UTC)
    return await _changed(session, opportunity, actor_id=actor_id)


async def remove_line_item(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    product_id: uuid.UUID,
    if_match: str | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    opportunity = await _open_opportunity(session, opportunity_id, if_match, caller)
    item = _find(opportunity, product_id)
    opportunity.line_items.remove(item)
    return await _changed(session, opportunity, actor_id=actor_id)
