"""Erasing a customer's personal data on request (GDPR art. 17).

The record stays (its id, number, status, type, dates and value totals: what other records and the
reports count on); names, contact data, addresses, notes, tags and custom fields go. Its other
copies are scrubbed by every context from `customer.erased` (crm_common.erasure).
"""

import uuid
from datetime import UTC, datetime

from crm_common import erasure
from crm_common.customer_refs import MAX_MERGE_HOPS
from crm_common.events.outbox import add_events
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerAddress
from customer_svc.service.customers import get_customer, merged_error
from customer_svc.service.query import compact_search_index

ERASED_EMAIL_DOMAIN = erasure.ERASED_EMAIL_DOMAIN
# Nullable personal fields, emptied.
_CLEARED = (
    "first_name",
    "last_name",
    "title",
    "company_name",
    "phone",
    "mobile",
    "website",
    "notes",
    "external_id",
)


def is_erased(customer: Customer) -> bool:
    return customer.erased_at is not None


async def erase_customer(session: AsyncSession, *, customer_id: uuid.UUID, actor_id: uuid.UUID) -> Customer:
    """Scrub the customer, and the duplicates merged into it (the same person: their records still
    hold what they had), publishing `customer.erased` for each. A second call finds it erased and
    changes nothing. A merged-away customer is erased through its survivor (409 CUSTOMER_MERGED)."""
    customer = await get_customer(session, customer_id, for_update=True)
    if is_erased(customer):
        return customer
    if customer.merged_into_id is not None:
        raise merged_error(customer)
    records = [customer, *await _merged_into(session, customer.id)]
    now = datetime.now(UTC)
    removed: set[str] = set()
    for record in records:
        removed |= await _scrub(session, record, at=now)
    await session.flush()
    await add_events(session, *(publish.customer_erased(r, actor_id=actor_id, at=now) for r in records))
    for record in records:
        await erasure.scrub_event_store(session, customer_id=record.id, values=removed)
    await compact_search_index(session)
    return await get_customer(session, customer.id)


async def _merged_into(session: AsyncSession, survivor_id: uuid.UUID) -> list[Customer]:
    """Every customer whose merge chain ends at the survivor (bounded like customer_refs' chains)."""
    found: list[Customer] = []
    frontier = [survivor_id]
    for _ in range(MAX_MERGE_HOPS):
        if not frontier:
            break
        rows = (
            await session.execute(
                select(Customer)
                .where(Customer.merged_into_id.in_(frontier))
                .options(selectinload(Customer.addresses))
                .with_for_update(of=Customer)
            )
        ).scalars()
        fresh = [c for c in rows if c not in found and c.id != survivor_id]
        found += fresh
        frontier = [c.id for c in fresh]
    return found


async def _scrub(session: AsyncSession, customer: Customer, *, at: datetime) -> set[str]:
    """The record's personal data goes; answers the values removed."""
    removed = erasure.values_of(
        *(getattr(customer, f) for f in (*_CLEARED, "full_name", "email")),
        customer.tags,
        customer.custom_fields,
        *([a.street, a.city, a.state, a.zip_code, a.country] for a in customer.addresses),
    )
    for field in _CLEARED:
        setattr(customer, field, None)
    customer.full_name = erasure.ERASED
    customer.email = f"{customer.id}@{ERASED_EMAIL_DOMAIN}"
    customer.tags = []
    customer.custom_fields = {}
    customer.erased_at = at
    customer.updated_at = at
    await session.execute(delete(CustomerAddress).where(CustomerAddress.customer_id == customer.id))
    return removed
