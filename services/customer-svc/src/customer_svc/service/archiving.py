"""Archive, restore and purge customers (the rules are crm_common.archive's)."""

import uuid
from collections.abc import Sequence
from datetime import timedelta

from crm_common import archive
from crm_common.db import Database
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.events import publish
from customer_svc.models import Customer
from customer_svc.service.customers import get_customer


async def set_archived(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    archived: bool,
    if_match: str | None,
    caller: ScopedCaller,
) -> Customer:
    """Archive (or restore) a customer in the caller's write scope; a repeat changes nothing."""
    customer = await get_customer(session, customer_id, caller=caller, write=True, archived_ok=True)
    if not await archive.set_archived(session, customer, archived, if_match=if_match):
        return customer
    event = publish.customer_archived if archived else publish.customer_restored
    await add_events(session, event(customer, actor_id=caller.id))
    return await get_customer(session, customer.id)


async def _on_purge(session: AsyncSession, customers: Sequence[Customer]) -> None:
    # Addresses and value totals go with the row (ON DELETE CASCADE); the copies of opportunities
    # stay, keyed by opportunity (their events may still come, and then change no customer).
    now = utcnow()
    await add_events(session, *(publish.customer_purged(c, at=now) for c in customers))


async def purge(db: Database, retention: timedelta, *, now=None) -> int:
    """Delete customers archived longer than `retention` (the service's periodic task)."""
    return await archive.purge_archived(
        db, Customer, resource="customer", retention=retention, on_purge=_on_purge, now=now
    )
