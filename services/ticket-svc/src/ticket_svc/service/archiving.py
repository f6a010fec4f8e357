"""Archive, restore and purge tickets (the rules are crm_common.archive's). An archived ticket is
not worked on: the SLA scheduler leaves it alone."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_common import archive
from crm_common.db import Database
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.events import publish
from ticket_svc.models import Ticket
from ticket_svc.service.tickets import get_ticket


async def set_archived(
    session: AsyncSession, *, ticket_id: uuid.UUID, archived: bool, if_match: str | None, caller: ScopedCaller
) -> Ticket:
    """Archive (or restore) a ticket in the caller's write scope; a repeat changes nothing."""
    ticket = await get_ticket(
        session, ticket_id, for_update=True, caller=caller, write=True, archived_ok=True
    )
    if not await archive.set_archived(session, ticket, archived, if_match=if_match):
        return ticket
    event = publish.archived if archived else publish.restored
    await add_events(session, event(ticket, caller.id))
    return await get_ticket(session, ticket.id)


async def _on_purge(session: AsyncSession, tickets: Sequence[Ticket]) -> None:
    # Communications and recorded breaches go with the row (ON DELETE CASCADE).
    now = utcnow()
    await add_events(session, *(publish.purged(t, now) for t in tickets))


async def purge(db: Database, retention: timedelta, *, now: datetime | None = None) -> int:
    """Delete tickets archived longer than `retention` (the service's periodic task)."""
    return await archive.purge_archived(
        db, Ticket, resource="ticket", retention=retention, on_purge=_on_purge, now=now
    )
