"""Customer domain logic: plain async functions that take a session."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from crm_common.errors import FieldError, ProblemError, not_found
from crm_common.events.outbox import add_events
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from customer_svc import events
from customer_svc.models import Customer, CustomerAddress, CustomerNumberCounter, CustomerType
from customer_svc.schemas import CustomerCreate


async def next_customer_number(session: AsyncSession, year: int) -> str:
    """CUST-YYYY-NNNNNN from a per-year counter row, incremented under its row lock (Postgres) or the
    write lock (SQLite): concurrent creates get distinct, consecutive numbers; a rolled-back create
    gives its number back."""
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    await session.execute(
        dialect.insert(CustomerNumberCounter)
        .values(year=year, last_value=0)
        .on_conflict_do_nothing(index_elements=["year"])
    )
    value = (
        await session.execute(
            update(CustomerNumberCounter)
            .where(CustomerNumberCounter.year == year)
            .values(last_value=CustomerNumberCounter.last_value + 1)
            .returning(CustomerNumberCounter.last_value)
        )
    ).scalar_one()
    return f"CUST-{year}-{value:06d}"


def full_name_of(type_: str, first: str | None, last: str | None, company: str | None) -> str:
    if type_ == CustomerType.COMPANY:
        return company or ""
    return " ".join(p for p in (first, last) if p)


async def email_taken(session: AsyncSession, email: str) -> bool:
    found = await session.execute(
        select(Customer.id).where(func.lower(Customer.email) == email.lower()).limit(1)
    )
    return found.first() is not None


def _email_exists(email: str) -> ProblemError:
    return ProblemError(
        409,
        "CUSTOMER_EMAIL_EXISTS",
        f"A customer with the email {email} already exists.",
        errors=[FieldError(field="email", message="already used by another customer", code="unique")],
    )


async def create_customer(session: AsyncSession, *, data: CustomerCreate, actor_id: uuid.UUID) -> Customer:
    # A fast, friendly answer for the common case; the unique index below settles races.
    if await email_taken(session, data.email):
        raise _email_exists(data.email)
    now = datetime.now(UTC)
    fields = data.model_dump(exclude={"addresses"})
    customer = Customer(
        **fields,
        customer_number=await next_customer_number(session, now.year),
        full_name=full_name_of(data.type, data.first_name, data.last_name, data.company_name),
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    if customer.assigned_to_id is None:
        customer.assigned_to_id = actor_id
    session.add(customer)
    for address in data.addresses:
        session.add(CustomerAddress(customer_id=customer.id, **address.model_dump()))
    try:
        await session.flush()
    except IntegrityError as exc:
        if "uq_customers_email_lower" in str(exc.orig) or "customers.email" in str(exc.orig):
            raise _email_exists(data.email) from None
        raise
    await add_events(session, events.customer_created(customer))
    return await get_customer(session, customer.id)


async def get_customer(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = (
        await session.execute(
            select(Customer)
            .where(Customer.id == customer_id)
            .options(selectinload(Customer.addresses))
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if customer is None:
        raise not_found("customer", customer_id)
    return customer


SORTABLE = {
    "createdAt": Customer.created_at,
    "updatedAt": Customer.updated_at,
    "fullName": Customer.full_name,
    "customerNumber": Customer.customer_number,
    "status": Customer.status,
    "priority": Customer.priority,
    "lifetimeValue": Customer.lifetime_value,
    "totalValue": Customer.total_value,
}


async def list_customers(
    session: AsyncSession,
    *,
    params: PageParams,
    q: str | None = None,
    status: Sequence[str] = (),
    type_: str | None = None,
    priority: Sequence[str] = (),
    assigned_to_id: uuid.UUID | None = None,
    team_id: uuid.UUID | None = None,
) -> tuple[list[Customer], int]:
    query = select(Customer).options(selectinload(Customer.addresses))
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(Customer.full_name).like(pattern),
                func.lower(Customer.email).like(pattern),
                func.lower(Customer.company_name).like(pattern),
                func.lower(Customer.customer_number).like(pattern),
            )
        )
    if status:
        query = query.where(Customer.status.in_(status))
    if type_:
        query = query.where(Customer.type == type_)
    if priority:
        query = query.where(Customer.priority.in_(priority))
    if assigned_to_id:
        query = query.where(Customer.assigned_to_id == assigned_to_id)
    if team_id:
        query = query.where(Customer.team_id == team_id)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Customer.created_at.desc(), Customer.id]))
    return await paginate(session, query, params)
