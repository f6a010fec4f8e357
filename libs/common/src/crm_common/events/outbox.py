"""The outbox writer: events are rows written in the same transaction as the state change."""

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import consistency
from crm_common.db import OUTBOX_WRITTEN, after_commit
from crm_common.events.envelope import CloudEvent
from crm_common.events.tables import outbox


async def add_events(session: AsyncSession, *events: CloudEvent) -> None:
    if not events:
        return
    now = datetime.now(UTC)
    await session.execute(
        insert(outbox),
        [
            {
                "event_id": e.id,
                "routing_key": e.routing_key,
                "payload": e.model_dump(mode="json", exclude_none=True),
                "created_at": now,
                "state": "PENDING",
                "attempts": 0,
            }
            for e in events
        ],
    )
    events_written(session, events)


def events_written(session: AsyncSession, events: Iterable[CloudEvent]) -> None:
    """What follows writing events to the outbox, however they were written (`add_events`, or a
    statement of its own: crm_common.numbering.insert_numbered)."""
    # The request's response names them (CRM-Consistency-Token), so its client can wait for them.
    consistency.note_written(events)
    # Wake the relay as soon as this commits rather than at its next poll.
    notify = session.info.get(OUTBOX_WRITTEN)
    if notify:
        after_commit(session, notify)
