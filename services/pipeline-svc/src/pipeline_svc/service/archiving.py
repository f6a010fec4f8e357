"""Archive, restore and purge opportunities (the rules are crm_common.archive's)."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from crm_common import archive
from crm_common.db import Database
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.events import publish as events
from pipeline_svc.models import Invoice, Opportunity
from pipeline_svc.service.opportunities import load_opportunity


async def set_archived(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    archived: bool,
    if_match: str | None,
    caller: ScopedCaller,
) -> Opportunity:
    """Archive (or restore) an opportunity in the caller's write scope; a repeat changes nothing."""
    opportunity = await load_opportunity(
        session, opportunity_id, lock=True, caller=caller, write=True, archived_ok=True
    )
    if not await archive.set_archived(session, opportunity, archived, if_match=if_match):
        return opportunity
    event = events.opportunity_archived if archived else events.opportunity_restored
    await add_events(session, event(opportunity, by=caller.id))
    return await load_opportunity(session, opportunity.id)


async def _on_purge(session: AsyncSession, opportunities: Sequence[Opportunity]) -> None:
    # Line items go with the row (ON DELETE CASCADE); invoices raised from an opportunity stay,
    # unlinked. The stage totals follow the delete (the triggers).
    ids = [o.id for o in opportunities]
    await session.execute(
        sa.update(Invoice)
        .where(Invoice.opportunity_id.in_(ids))
        .values(opportunity_id=None)
        .execution_options(synchronize_session=False)
    )
    now = utcnow()
    await add_events(session, *(events.opportunity_purged(o, at=now) for o in opportunities))


async def purge(db: Database, retention: timedelta, *, now: datetime | None = None) -> int:
    """Delete opportunities archived longer than `retention` (the service's periodic task)."""
    return await archive.purge_archived(
        db, Opportunity, resource="opportunity", retention=retention, on_purge=_on_purge, now=now
    )
