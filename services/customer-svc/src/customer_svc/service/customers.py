"""Customers: numbers, create, read, update, list."""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from crm_common import directory, numbering
from crm_common.archive import ArchivedMode, check_not_archived
from crm_common.batch import external_id_exists
from crm_common.changes import Changes, ChangesParams, changes_page
from crm_common.concurrency import check_version
from crm_common.errors import FieldError, ProblemError, not_found, unique_violation
from crm_common.events.outbox import add_events
from crm_common.pagination import SEARCH_COUNT_LIMIT, PageParams, paginate, paginate_rows
from crm_common.record_scope import ScopedCaller
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerAddress, CustomerNumberCounter, CustomerType
from customer_svc.schemas import CustomerCreateRequest, CustomerRead, CustomerUpdateRequest, SegmentFilter
from customer_svc.service.errors import CustomerEmailExists, CustomerMerged, InvalidCustomer
from customer_svc.service.query import customer_rows, customer_select, in_scope

CUSTOMER_PREFIX = "CUST"


async def next_customer_numbers(session: AsyncSession, year: int, count: int = 1) -> list[str]:
    """`count` consecutive CUST-YYYY-NNNNNN numbers, gap-free (crm_common.numbering)."""
    return await numbering.next_numbers(session, CustomerNumberCounter, CUSTOMER_PREFIX, year, count)


def full_name_of(type_: str, first: str | None, last: str | None, company: str | None) -> str:
    if type_ == CustomerType.COMPANY:
        return company or ""
    return " ".join(p for p in (first, last) if p)


def name_errors(type_: str, first: str | None, last: str | None, company: str | None) -> list[FieldError]:
    if type_ == CustomerType.INDIVIDUAL and not (first or last):
        return [
            FieldError(field="firstName", message="an individual needs firstName or lastName", code="missing")
        ]
    if type_ == CustomerType.COMPANY and not company:
        return [FieldError(field="companyName", message="a company needs companyName", code="missing")]
    return []


async def email_taken(session: AsyncSession, email: str, *, other_than: uuid.UUID | None = None) -> bool:
    query = select(Customer.id).where(
        func.lower(Customer.email) == email.lower(), Customer.merged_into_id.is_(None)
    )
    if other_than is not None:
        query = query.where(Customer.id != other_than)
    return (await session.execute(query.limit(1))).first() is not None


def email_exists(email: str) -> CustomerEmailExists:
    return CustomerEmailExists(
        f"A customer with the email {email} already exists.",
        errors=[FieldError(field="email", message="already used by another customer", code="unique")],
    )


def is_email_conflict(exc: IntegrityError) -> bool:
    return unique_violation(exc) == "uq_customers_email_lower"


async def external_id_taken(
    session: AsyncSession, external_id: str, *, other_than: uuid.UUID | None = None
) -> bool:
    query = select(Customer.id).where(Customer.external_id == external_id, Customer.merged_into_id.is_(None))
    if other_than is not None:
        query = query.where(Customer.id != other_than)
    return (await session.execute(query.limit(1))).first() is not None


def unique_conflict(exc: IntegrityError, customer: Customer) -> ProblemError | None:
    """The problem for a unique index the write ran into (a race the checks before it lost)."""
    if is_email_conflict(exc):
        return email_exists(customer.email)
    if unique_violation(exc) == "uq_customers_external_id":
        return external_id_exists("customer", customer.external_id)
    return None


def merged_error(customer: Customer) -> CustomerMerged:
    return CustomerMerged(
        f"Customer {customer.customer_number} was merged into {customer.merged_into_id}; change that one.",
        extra={"mergedIntoId": str(customer.merged_into_id)},
    )


def jsonable(value: Any) -> Any:
    return to_jsonable_python(value)


async def create_customer(
    session: AsyncSession, *, data: CustomerCreateRequest, caller: ScopedCaller
) -> Customer:
    actor_id = caller.id
    # A new customer is the caller's unless they give it away: to someone inside their write scope.
    caller.check_write(data.assigned_to_id or actor_id, data.team_id)
    # A taken email is refused by its unique index when the customer is inserted, before a number is
    # taken (unique_conflict below): the same 409 a look first would give, and one round trip fewer
    # for every create that succeeds.
    if data.external_id is not None and await external_id_taken(session, data.external_id):
        raise external_id_exists("customer", data.external_id)
    now = datetime.now(UTC)
    fields = data.model_dump(exclude={"addresses"})
    customer = Customer(
        **fields,
        full_name=full_name_of(data.type, data.first_name, data.last_name, data.company_name),
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    if customer.assigned_to_id is None:
        customer.assigned_to_id = actor_id
    # Built whole in memory (addresses included), so nothing is read back once numbered: the number
    # counter's row lock is held from then to commit, and every other create waits for it.
    customer.addresses = [CustomerAddress(customer_id=customer.id, **a.model_dump()) for a in data.addresses]
    try:
        await numbering.insert_numbered(
            session,
            customer,
            counter=CustomerNumberCounter,
            prefix=CUSTOMER_PREFIX,
            year=now.year,
            column="customer_number",
            member="customerNumber",
            created=publish.customer_created,
        )
    except IntegrityError as exc:
        if problem := unique_conflict(exc, customer):
            raise problem from None
        raise
    return customer


async def get_customer(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    for_update: bool = False,
    caller: ScopedCaller | None = None,
    write: bool = False,
    archived_ok: bool = False,
) -> Customer:
    """The customer; 404 when it does not exist or is outside `caller`'s read scope (the same answer,
    so nothing tells them apart), and with `write` a 403 when readable but outside the write scope and
    a 409 `ARCHIVED` when archived (unless `archived_ok`: archive and restore)."""
    query = (
        select(Customer)
        .where(Customer.id == customer_id, in_scope(caller) if caller is not None else sa.true())
        .options(selectinload(Customer.addresses))
        .execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update(of=Customer)
    customer = (await session.execute(query)).scalar_one_or_none()
    if customer is None:
        raise not_found("customer", customer_id)
    if write and caller is not None:
        caller.check_write(customer.assigned_to_id, customer.team_id)
    if write and not archived_ok:
        check_not_archived(customer, "customer")
    return customer


async def read_customer(
    session: AsyncSession, customer_id: uuid.UUID, *, caller: ScopedCaller
) -> CustomerRead:
    """GET one customer in one round trip: the row, its addresses (joined) and its assignee's name
    (from the user directory) in one statement; 404 as get_customer answers it."""
    assignee = directory.users.c.full_name.label("assignee_name")
    query = (
        select(Customer, assignee)
        .outerjoin(directory.users, directory.users.c.id == Customer.assigned_to_id)
        .where(Customer.id == customer_id, in_scope(caller))
        .options(joinedload(Customer.addresses))
        .execution_options(populate_existing=True)
    )
    found = (await session.execute(query)).unique().first()
    if found is None:
        raise not_found("customer", customer_id)
    customer, name = found
    row = CustomerRead.model_validate(customer)
    row.assigned_to_name = name if customer.assigned_to_id else None
    return row


def _address_key(a) -> tuple:
    """Comparable (no None against str) and the same for a stored address and a request's."""
    values = (a.type, a.street, a.city, a.state, a.zip_code, a.country)
    return (*("" if v is None else str(v) for v in values), bool(a.is_primary))


async def update_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    data: CustomerUpdateRequest,
    if_match: str | None,
    caller: ScopedCaller,
) -> Customer:
    """A partial update: only the fields sent change; fullName follows the name fields; the UPDATE
    carries the version read (a racing write is a 412)."""
    actor_id = caller.id
    customer = await get_customer(session, customer_id, caller=caller, write=True)
    check_version(customer.version, if_match=if_match, body_version=data.version)
    if customer.merged_into_id is not None:
        raise merged_error(customer)
    sent = data.changes()
    new_addresses = sent.pop("addresses", None)

    names = [sent.get(n, getattr(customer, n)) for n in ("type", "first_name", "last_name", "company_name")]
    if errors := name_errors(*names):
        raise InvalidCustomer(errors[0].message, errors=errors)
    if "email" in sent and sent["email"].lower() != customer.email.lower():
        if await email_taken(session, sent["email"], other_than=customer.id):
            raise email_exists(sent["email"])
    if sent.get("external_id") is not None and sent["external_id"] != customer.external_id:
        if await external_id_taken(session, sent["external_id"], other_than=customer.id):
            raise external_id_exists("customer", sent["external_id"])

    changes: dict[str, Any] = {}
    for name, value in sent.items():
        if getattr(customer, name) != value:
            setattr(customer, name, value)
            changes[to_camel(name)] = jsonable(value)
    full_name = full_name_of(*names)
    if full_name != customer.full_name:
        customer.full_name = full_name
        changes["fullName"] = full_name
    if new_addresses is not None:
        before = sorted(_address_key(a) for a in customer.addresses)
        after = sorted(_address_key(a) for a in new_addresses)
        if before != after:
            customer.addresses = [
                CustomerAddress(customer_id=customer.id, **a.model_dump()) for a in new_addresses
            ]
            changes["addresses"] = [jsonable(a.model_dump(by_alias=True)) for a in new_addresses]
    if not changes:
        return customer
    customer.updated_at = datetime.now(UTC)
    try:
        await session.flush()
    except IntegrityError as exc:
        if problem := unique_conflict(exc, customer):
            raise problem from None
        raise
    await add_events(session, publish.customer_updated(customer, changes, actor_id))
    return await get_customer(session, customer.id)


async def list_customers(
    session: AsyncSession,
    *,
    caller: ScopedCaller,
    params: PageParams,
    q: str | None = None,
    f: SegmentFilter | None = None,
    exclude_merged: bool = False,
    archived: ArchivedMode = "exclude",
) -> tuple[list[Customer], int]:
    query = customer_select(
        session, caller=caller, q=q, f=f, sort=params.sort, exclude_merged=exclude_merged, archived=archived
    ).options(selectinload(Customer.addresses))
    return await paginate(session, query, params)


async def list_page(
    session: AsyncSession,
    *,
    caller: ScopedCaller,
    params: PageParams,
    q: str | None = None,
    f: SegmentFilter | None = None,
    archived: ArchivedMode = "exclude",
) -> tuple[list[CustomerRead], int, bool]:
    """The list view's page as API rows, the total and whether it is exact: the rows, their
    assignees' names, their addresses and the total in one statement, as Core rows (the ORM's
    identity map and instance state cost more than the page itself; the API rows are validated
    from plain values). A search's total counts to SEARCH_COUNT_LIMIT."""
    query = customer_select(session, caller=caller, q=q, f=f, sort=params.sort, archived=archived)
    searching = bool(q and q.strip())
    rows, total, exact = await paginate_rows(
        session,
        query,
        params,
        Customer,
        lambda page: customer_rows(session, page),
        count_limit=SEARCH_COUNT_LIMIT if searching else None,
    )
    return [CustomerRead.model_validate(dict(row._mapping)) for row in rows], total, exact


async def changes_feed(session: AsyncSession, params: ChangesParams, *, caller: ScopedCaller) -> Changes:
    """Customers the caller may read changed after the cursor (archived ones too, with `archivedAt`);
    merged-away and purged customers as tombstones."""
    query = customer_select(session, caller=caller, exclude_merged=True, archived="include").options(
        selectinload(Customer.addresses)
    )
    return await changes_page(session, query, "customer", params, lambda rows: to_read(session, rows))


async def to_read(session: AsyncSession, customers: Iterable[Customer]) -> list[CustomerRead]:
    """API rows, each with its assignee's name from the user directory."""
    customers = list(customers)
    names = await directory.user_names(session, (c.assigned_to_id for c in customers))
    return [read_with(c, names) for c in customers]


def read_with(customer: Customer, names: dict[uuid.UUID, str]) -> CustomerRead:
    """The API row, its assignee's name from `names` (directory.user_names)."""
    row = CustomerRead.model_validate(customer)
    row.assigned_to_name = names.get(customer.assigned_to_id) if customer.assigned_to_id else None
    return row


async def to_read_one(session: AsyncSession, customer: Customer) -> CustomerRead:
    return (await to_read(session, [customer]))[0]
