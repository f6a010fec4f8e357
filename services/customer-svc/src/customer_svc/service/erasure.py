"""Erasing a customer's personal data on request (GDPR art. 17).

The record stays (its id, number, status, type, dates and value totals: what other records and the
reports count on); names, contact data, addresses, notes, tags and custom fields go. Its other
copies are scrubbed by every context from `customer.erased` (crm_common.erasure).
"""

import uuid
from datetime import UTC, datetime

from crm_common import erasure
from crm_common.events.outbox import add_events
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc import events
from customer_svc.models import Customer, CustomerAddress
from customer_svc.service.customers import get_customer

# The email is required and unique: an erased customer gets one that names no one and never delivers
# (`.invalid` is reserved, RFC 2606). It is also how an erased customer is recognised.
ERASED_EMAIL_DOMAIN = "erased.invalid"
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
    return customer.email.endswith("@" + ERASED_EMAIL_DOMAIN)


async def erase_customer(session: AsyncSession, *, customer_id: uuid.UUID, actor_id: uuid.UUID) -> Customer:
    """Scrub the customer and publish `customer.erased`; a second call finds it erased and changes
    nothing. A merged-away customer is erased too (its record still holds the data)."""
    customer = await get_customer(session, customer_id, for_update=True)
    if is_erased(customer):
        return customer
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
    now = datetime.now(UTC)
    customer.updated_at = now
    await session.execute(delete(CustomerAddress).where(CustomerAddress.customer_id == customer.id))
    await session.flush()
    await add_events(session, events.customer_erased(customer, actor_id=actor_id, at=now))
    await erasure.scrub_event_store(session, customer_id=customer.id, values=removed)
    return await get_customer(session, customer.id)
