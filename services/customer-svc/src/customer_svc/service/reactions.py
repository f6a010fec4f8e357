"""What other contexts' events change on customers: opportunity totals, the won -> CUSTOMER
promotion, and lastContactDate. Every function runs in the inbox transaction of its event.

Totals are never incremented: each opportunity's newest state (by version = the event's
`sequence`) is kept in `customer_opportunities`, and the customer's totals are recomputed from those
rows. A redelivered or late (older) event changes nothing, so any delivery order ends the same.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from crm_common.contracts.activity import ActivityCompleted
from crm_common.contracts.pipeline import OpportunityPurged, OpportunityState
from crm_common.contracts.ticket import TicketCommunicationAdded
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerOpportunity, CustomerStatus, CustomerValueTotal
from customer_svc.service.customers import get_customer

# totalValue/lifetimeValue are one number each; they are expressed in this currency unless the
# customer's open and won opportunities are all in another one (see value_currency_of).
DEFAULT_CURRENCY = "USD"
OPEN, WON = "OPEN", "WON"
# An opportunity deleted after its archive retention: kept as its newest state, counted nowhere.
PURGED = "PURGED"
ZERO = Decimal("0.00")


class RetryLater(Exception):
    """A concurrent change moved what this handler locked; the bus redelivers the event."""


def value_currency_of(currencies: list[str]) -> str:
    """The currency of totalValue/lifetimeValue: the only one the customer deals in; with several,
    the platform default if among them, else the first alphabetically. `valueTotals` lists all."""
    if not currencies:
        return DEFAULT_CURRENCY
    if len(currencies) == 1 or DEFAULT_CURRENCY not in currencies:
        return sorted(currencies)[0]
    return DEFAULT_CURRENCY


async def recompute_totals(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """Open and won sums per currency from the opportunity states (Decimal sums in Python: SQLite
    has no exact decimal arithmetic). Derived fields: the customer's version does not move."""
    rows = await session.execute(
        sa.select(CustomerOpportunity.currency, CustomerOpportunity.status, CustomerOpportunity.amount).where(
            CustomerOpportunity.customer_id == customer_id, CustomerOpportunity.status.in_((OPEN, WON))
        )
    )
    sums: dict[str, list[Decimal]] = {}
    for currency, status, amount in rows:
        pair = sums.setdefault(currency, [ZERO, ZERO])
        pair[0 if status == OPEN else 1] += Decimal(amount)
    currency = value_currency_of(list(sums))
    open_, won = sums.get(currency, [ZERO, ZERO])
    await session.execute(
        sa.update(Customer)
        .where(Customer.id == customer_id)
        .values(
            total_value=open_,
            lifetime_value=won,
            value_currency=currency,
            value_totals=[
                {"currency": c, "totalValue": str(o.quantize(ZERO)), "lifetimeValue": str(w.quantize(ZERO))}
                for c, (o, w) in sorted(sums.items())
            ],
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(sa.delete(CustomerValueTotal).where(CustomerValueTotal.customer_id == customer_id))
    if sums:
        await session.execute(
            sa.insert(CustomerValueTotal),
            [
                {"customer_id": customer_id, "currency": c, "total_value": o, "lifetime_value": w}
                for c, (o, w) in sorted(sums.items())
            ],
        )


async def surviving_customer(session: AsyncSession, customer_id: uuid.UUID) -> uuid.UUID:
    """Follow `mergedIntoId` to the customer that now stands for `customer_id` (itself if it was
    never merged or is unknown here)."""
    seen = {customer_id}
    current = customer_id
    while True:
        merged_into = (
            await session.execute(sa.select(Customer.merged_into_id).where(Customer.id == current))
        ).scalar_one_or_none()
        if merged_into is None or merged_into in seen:
            return current
        seen.add(merged_into)
        current = merged_into


async def lock_customers(session: AsyncSession, ids: set[uuid.UUID]) -> None:
    """Row locks in id order (Postgres; SQLite has one writer anyway). Whoever changes which customer
    an opportunity belongs to holds the locks of both customers, so totals never race."""
    if session.bind.dialect.name != "postgresql" or not ids:
        return
    await session.execute(
        sa.select(Customer.id).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update()
    )


async def promote_on_win(session: AsyncSession, customer_id: uuid.UUID) -> None:
    """A won opportunity makes a LEAD or PROSPECT a CUSTOMER (a user-visible change: new version and
    `customer.updated`)."""
    promoted = (
        await session.execute(
            sa.update(Customer)
            .where(
                Customer.id == customer_id,
                Customer.status.in_((CustomerStatus.LEAD, CustomerStatus.PROSPECT)),
                Customer.merged_into_id.is_(None),
            )
            .values(
                status=CustomerStatus.CUSTOMER, version=Customer.version + 1, updated_at=datetime.now(UTC)
            )
            .returning(Customer.id)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one_or_none()
    if promoted is not None:
        customer = await get_customer(session, customer_id)
        await add_events(
            session, publish.customer_updated(customer, {"status": CustomerStatus.CUSTOMER}, None)
        )


async def apply_opportunity(session: AsyncSession, event: CloudEvent) -> None:
    state = OpportunityState.model_validate(event.data)
    version = event.sequence or 0
    row_of = sa.select(CustomerOpportunity).where(CustomerOpportunity.opportunity_id == state.opportunity_id)
    known = (await session.execute(row_of)).scalar_one_or_none()
    if known is not None and known.version >= version:
        return  # a redelivery or an older state than the one kept
    target = await surviving_customer(session, state.customer_id)
    affected = {target} | ({known.customer_id} if known is not None else set())
    await lock_customers(session, affected)
    # With those locks held nobody can move the opportunity or merge its customers; check that
    # nobody did between the reads above and the locks.
    known = (
        await session.execute(row_of.with_for_update().execution_options(populate_existing=True))
    ).scalar_one_or_none()
    if (known is not None and known.customer_id not in affected) or await surviving_customer(
        session, state.customer_id
    ) != target:
        raise RetryLater(f"opportunity {state.opportunity_id} moved concurrently")
    if known is not None and known.version >= version:
        return
    now = datetime.now(UTC)
    values = {
        "customer_id": target,
        "status": state.status,
        "amount": state.amount,
        "currency": state.currency,
        "version": version,
        "updated_at": now,
    }
    if known is None:
        session.add(CustomerOpportunity(opportunity_id=state.opportunity_id, **values))
    else:
        for name, value in values.items():
            setattr(known, name, value)
    await session.flush()
    known_customers = set(
        (await session.execute(sa.select(Customer.id).where(Customer.id.in_(affected)))).scalars()
    )
    for customer_id in sorted(known_customers):
        await recompute_totals(session, customer_id)
    if state.status == WON and target in known_customers:
        await promote_on_win(session, target)


async def apply_opportunity_purged(session: AsyncSession, event: CloudEvent) -> None:
    """The opportunity is gone: its customer's totals drop it. Its row stays, as the newest state
    (status PURGED at a version above any other), so a late event about it changes nothing."""
    data = OpportunityPurged.model_validate(event.data)
    version = event.sequence or 0
    row_of = sa.select(CustomerOpportunity).where(CustomerOpportunity.opportunity_id == data.opportunity_id)
    known = (await session.execute(row_of)).scalar_one_or_none()
    if known is not None and known.version >= version:
        return
    if known is None:
        target = await surviving_customer(session, data.customer_id)
        session.add(
            CustomerOpportunity(
                opportunity_id=data.opportunity_id,
                customer_id=target,
                status=PURGED,
                amount=ZERO,
                currency=DEFAULT_CURRENCY,
                version=version,
            )
        )
        await session.flush()
        return  # it never counted here
    await lock_customers(session, {known.customer_id})
    known = (
        await session.execute(row_of.with_for_update().execution_options(populate_existing=True))
    ).scalar_one()
    if known.version >= version:
        return
    known.status, known.version, known.updated_at = PURGED, version, datetime.now(UTC)
    await session.flush()
    if (await session.execute(sa.select(Customer.id).where(Customer.id == known.customer_id))).first():
        await recompute_totals(session, known.customer_id)


async def move_last_contact(session: AsyncSession, customer_id: uuid.UUID | None, at: datetime) -> None:
    """Forward only: an older (or late) contact never moves the date back."""
    if customer_id is None:
        return
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    target = await surviving_customer(session, customer_id)
    await session.execute(
        sa.update(Customer)
        .where(
            Customer.id == target,
            sa.or_(Customer.last_contact_date.is_(None), Customer.last_contact_date < at),
        )
        .values(last_contact_date=at)
        .execution_options(synchronize_session=False)
    )


async def apply_activity_completed(session: AsyncSession, event: CloudEvent) -> None:
    data = ActivityCompleted.model_validate(event.data)
    await move_last_contact(session, data.customer_id, data.completed_at)


async def apply_ticket_communication(session: AsyncSession, event: CloudEvent) -> None:
    data = TicketCommunicationAdded.model_validate(event.data)
    if data.internal:
        return  # an internal note is not a contact with the customer
    await move_last_contact(session, data.customer_id, data.at)
