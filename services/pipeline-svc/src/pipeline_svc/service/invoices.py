"""Invoices: INV-YYYY-NNNNNN, DRAFT -> ISSUED -> PAID, or VOID. A won opportunity gets a DRAFT.

Record scopes (crm_common.record_scope, context `sales`): an invoice follows its opportunity, so whoever
may read (change) the opportunity may read (issue, pay, void) its invoices; an invoice made for a
customer without an opportunity follows that customer's owner: its assignee and team as customer-svc
last told (crm_common.customer_refs). Until this service knows the customer's owner (a customer last
heard of before the owner was carried, until its next event), such an invoice follows its creator, as
before. Outside the read scope an invoice is a 404 and absent from lists and totals; readable but
outside the write scope, a status change is a 403."""

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from crm_common import customer_refs, numbering
from crm_common.concurrency import check_optional_version
from crm_common.errors import FieldError, not_found
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from sqlalchemy import and_, exists, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from pipeline_svc.events import publish as events
from pipeline_svc.models import Invoice, InvoiceLine, InvoiceNumberCounter, InvoiceStatus, Opportunity
from pipeline_svc.schemas import InvoiceCreateRequest
from pipeline_svc.service import opportunities
from pipeline_svc.service.common import cents, line_total
from pipeline_svc.service.errors import (
    CurrencyMismatch,
    InvalidInvoiceTransition,
    OpportunityCustomerMismatch,
    UnknownOpportunity,
)

# A won opportunity's draft invoice is due this many days after the close date.
PAYMENT_TERMS_DAYS = 30

SORTABLE = {
    "createdAt": Invoice.created_at,
    "invoiceNumber": Invoice.invoice_number,
    "dueDate": Invoice.due_date,
    "total": Invoice.total,
    "status": Invoice.status,
}

# Which statuses each action moves an invoice from, and to.
TRANSITIONS = {
    "issue": ({InvoiceStatus.DRAFT}, InvoiceStatus.ISSUED),
    "pay": ({InvoiceStatus.ISSUED}, InvoiceStatus.PAID),
    "void": ({InvoiceStatus.DRAFT, InvoiceStatus.ISSUED}, InvoiceStatus.VOID),
}


def in_scope(caller: ScopedCaller, access: Access = "read"):
    """The invoices `caller` may read (or change): those of an opportunity in that scope, and those
    without one whose customer the scope covers by its owner (by the invoice's creator while the
    customer's owner is not known here)."""
    scope = caller.read if access == "read" else caller.write
    if scope.level == "all":
        return true()
    refs = customer_refs.refs
    of_opportunities = select(Opportunity.id).where(opportunities.in_scope(caller, access))
    of_customers = select(refs.c.id).where(customer_refs.owner_in_scope(scope))
    owner_known = exists().where(refs.c.id == Invoice.customer_id, refs.c.owner_known)
    return or_(
        Invoice.opportunity_id.in_(of_opportunities),
        and_(Invoice.opportunity_id.is_(None), Invoice.customer_id.in_(of_customers)),
        and_(
            Invoice.opportunity_id.is_(None),
            ~owner_known,
            scope_clause(caller, Invoice.created_by_id, access=access),
        ),
    )


async def owners(session: AsyncSession, invoice: Invoice) -> tuple[object, uuid.UUID | None]:
    """(owners, team) an invoice's write check uses: its opportunity's, else its customer's, else
    (customer's owner not known here) its creator."""
    if invoice.opportunity_id is not None:
        opportunity = await session.get(Opportunity, invoice.opportunity_id)
        return opportunity.owner_id, opportunity.team_id
    return await customer_owner(session, invoice.customer_id, fallback=invoice.created_by_id)


async def customer_owner(
    session: AsyncSession, customer_id: uuid.UUID, *, fallback: uuid.UUID | None
) -> tuple[object, uuid.UUID | None]:
    ref = await customer_refs.get(session, customer_id)
    if ref is not None and ref.owner_known:
        return ref.assigned_to_id, ref.team_id
    return fallback, None


async def next_invoice_number(session: AsyncSession, year: int) -> str:
    """INV-YYYY-NNNNNN, gap-free (crm_common.numbering)."""
    return await numbering.next_number(session, InvoiceNumberCounter, "INV", year)


async def insert_invoice(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    opportunity_id: uuid.UUID | None,
    currency: str,
    lines: Sequence[dict],
    due_date: date | None,
    notes: str | None,
    actor_id: uuid.UUID | None,
    with_events: Sequence[CloudEvent] = (),
) -> Invoice:
    """A DRAFT invoice and its `invoice.created` event (written with `with_events`, in one insert). `lines`: description, product_id, quantity,
    unit_price, discount (line_total is computed here)."""
    now = datetime.now(UTC)
    invoice = Invoice(
        invoice_number="",
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        status=InvoiceStatus.DRAFT,
        currency=currency,
        total=Decimal("0"),
        due_date=due_date,
        notes=notes,
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    total = Decimal("0")
    for position, line in enumerate(lines, start=1):
        item = InvoiceLine(
            position=position,
            product_id=line.get("product_id"),
            description=line["description"],
            quantity=cents(line["quantity"]),
            unit_price=cents(line["unit_price"]),
            discount=cents(line.get("discount", Decimal("0"))),
            line_total=line.get("line_total")
            or line_total(line["quantity"], line["unit_price"], line.get("discount", Decimal("0"))),
        )
        total += item.line_total
        invoice.lines.append(item)
    invoice.total = cents(total)
    # Last, just before the insert: the counter row stays locked until the transaction commits.
    invoice.invoice_number = await next_invoice_number(session, now.year)
    session.add(invoice)
    await session.flush()
    await add_events(session, *with_events, events.invoice_created(invoice))
    return invoice


async def invoice_for_won(
    session: AsyncSession,
    opportunity: Opportunity,
    *,
    actor_id: uuid.UUID | None,
    with_events: Sequence[CloudEvent] = (),
) -> Invoice:
    """The DRAFT invoice of a won opportunity: its line items, plus an adjustment line when the amount
    was set by hand to something else than their sum (so the invoice total is the amount won), or one
    line for the whole amount when it has no line items."""
    lines: list[dict] = [
        {
            "description": item.description or item.product.name,
            "product_id": item.product_id,
            "quantity": item.quantity,
            "unit_price": item.unit_price,
            "discount": item.discount,
            "line_total": item.line_total,
        }
        for item in opportunity.line_items
    ]
    covered = cents(sum((line["line_total"] for line in lines), Decimal("0")))
    if not lines:
        lines.append(
            {"description": opportunity.title, "quantity": Decimal("1"), "unit_price": opportunity.amount}
        )
    elif covered != opportunity.amount:
        difference = opportunity.amount - covered
        lines.append(
            {
                "description": "Adjustment to the agreed amount",
                "quantity": Decimal("1") if difference >= 0 else Decimal("-1"),
                "unit_price": abs(difference),
                "line_total": difference,
            }
        )
    close = opportunity.actual_close_date or datetime.now(UTC).date()
    return await insert_invoice(
        session,
        customer_id=opportunity.customer_id,
        opportunity_id=opportunity.id,
        currency=opportunity.currency,
        lines=lines,
        due_date=close + timedelta(days=PAYMENT_TERMS_DAYS),
        notes=None,
        actor_id=actor_id,
        with_events=with_events,
    )


async def create_invoice(
    session: AsyncSession, *, data: InvoiceCreateRequest, caller: ScopedCaller
) -> Invoice:
    """An opportunity outside the caller's read scope is unknown (422, as if missing); one they may
    read but not change is a 403: invoicing it is a change of the deal."""
    customer_id = (await customer_refs.require(session, data.customer_id, field="customerId")).id
    if data.opportunity_id is not None:
        opportunity = (
            await session.execute(
                select(Opportunity).where(
                    Opportunity.id == data.opportunity_id, opportunities.in_scope(caller)
                )
            )
        ).scalar_one_or_none()
        if opportunity is None:
            raise UnknownOpportunity(
                f"Opportunity {data.opportunity_id} does not exist.",
                errors=[
                    FieldError(
                        field="opportunityId", message="unknown opportunity", code="unknown_opportunity"
                    )
                ],
            )
        if opportunity.customer_id != customer_id:
            raise OpportunityCustomerMismatch(
                "The opportunity belongs to another customer.",
                errors=[
                    FieldError(
                        field="opportunityId", message="belongs to another customer", code="customer_mismatch"
                    )
                ],
            )
        if opportunity.currency != data.currency:
            raise CurrencyMismatch(
                f"The opportunity is in {opportunity.currency}; its invoices must be too.",
                errors=[
                    FieldError(
                        field="currency", message=f"must be {opportunity.currency}", code="currency_mismatch"
                    )
                ],
            )
        caller.check_write(opportunity.owner_id, opportunity.team_id)
    else:
        # The invoice will follow the customer: one outside the caller's read scope is unknown to
        # them (422, as if missing), one they may read but not change is a 403.
        owner, team = await customer_owner(session, customer_id, fallback=caller.id)
        if not caller.read.allows(owner, team):
            raise customer_refs.unknown_customer(data.customer_id, field="customerId")
        caller.check_write(owner, team)
    invoice = await insert_invoice(
        session,
        customer_id=customer_id,
        opportunity_id=data.opportunity_id,
        currency=data.currency,
        lines=[line.model_dump() for line in data.lines],
        due_date=data.due_date,
        notes=data.notes,
        actor_id=caller.id,
    )
    return await get_invoice(session, invoice.id)


async def get_invoice(
    session: AsyncSession,
    invoice_id: uuid.UUID,
    *,
    lock: bool = False,
    caller: ScopedCaller | None = None,
    write: bool = False,
) -> Invoice:
    """Outside `caller`'s read scope a 404 like a missing invoice; with `write`, outside their write
    scope a 403."""
    query = (
        select(Invoice)
        .where(Invoice.id == invoice_id, in_scope(caller) if caller is not None else true())
        .options(selectinload(Invoice.lines))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update(of=Invoice)
    invoice = (await session.execute(query)).scalar_one_or_none()
    if invoice is None:
        raise not_found("invoice", invoice_id)
    if write and caller is not None:
        caller.check_write(*await owners(session, invoice))
    return invoice


async def list_invoices(
    session: AsyncSession,
    *,
    params: PageParams,
    caller: ScopedCaller,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    status: Sequence[str] = (),
) -> tuple[list[Invoice], int]:
    query = select(Invoice).where(in_scope(caller)).options(selectinload(Invoice.lines))
    if customer_id:
        query = query.where(Invoice.customer_id == customer_id)
    if opportunity_id:
        query = query.where(Invoice.opportunity_id == opportunity_id)
    if status:
        query = query.where(Invoice.status.in_(status))
    query = query.order_by(*order_by(params.sort, SORTABLE, [Invoice.created_at.desc(), Invoice.id]))
    return await paginate(session, query, params)


async def transition_invoice(
    session: AsyncSession,
    *,
    invoice_id: uuid.UUID,
    action: str,
    if_match: str | None,
    body_version: int | None,
    caller: ScopedCaller,
) -> Invoice:
    invoice = await get_invoice(session, invoice_id, lock=True, caller=caller, write=True)
    check_optional_version(invoice.version, if_match=if_match, body_version=body_version)
    sources, target = TRANSITIONS[action]
    if invoice.status not in sources:
        raise InvalidInvoiceTransition(
            f"Invoice {invoice.invoice_number} is {invoice.status}; `{action}` needs "
            f"{' or '.join(sorted(sources))}.",
        )
    today = datetime.now(UTC).date()
    from_status = invoice.status
    invoice.status = target
    if target == InvoiceStatus.ISSUED:
        invoice.issue_date = today
        if invoice.due_date is None:
            invoice.due_date = today + timedelta(days=PAYMENT_TERMS_DAYS)
    elif target == InvoiceStatus.PAID:
        invoice.paid_date = today
    invoice.updated_at = datetime.now(UTC)
    await session.flush()
    await add_events(session, events.invoice_status_changed(invoice, from_status))
    return invoice
