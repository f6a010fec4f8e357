"""Archive, restore and purge activities (the rules are crm_common.archive's). System notes are the
record of business events: like any change, archiving one is a 409."""

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from crm_common import archive
from crm_common.db import Database
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.events import publish
from activity_svc.models import Activity
from activity_svc.service.activities import _editable, get_activity


async def set_archived(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    archived: bool,
    if_match: str | None,
    caller: ScopedCaller,
) -> Activity:
    """Archive (or restore) an activity in the caller's write scope; a repeat changes nothing."""
    activity = await _editable(
        session, activity_id, if_match=None, version=None, required=False, caller=caller, archived_ok=True
    )
    if not await archive.set_archived(session, activity, archived, if_match=if_match):
        return activity
    event = publish.activity_archived if archived else publish.activity_restored
    await add_events(session, event(activity, by=caller.id))
    return await get_activity(session, activity.id)


async def _on_purge(session: AsyncSession, activities: Sequence[Activity]) -> None:
    # Participants go with the row (ON DELETE CASCADE); follow-ups keep their `followUpOfId`.
    now = utcnow()
    await add_events(session, *(publish.activity_purged(a, at=now) for a in activities))


async def purge(db: Database, retention: timedelta, *, now: datetime | None = None) -> int:
    """Delete activities archived longer than `retention` (the service's periodic task)."""
    return await archive.purge_archived(
        db, Activity, resource="activity", retention=retention, on_purge=_on_purge, now=now
    )
