"""The breach-escalation scheduler: escalates open tickets whose first-response or resolution due
time has passed, once per breach, however many instances run.

One pass (`escalate_breaches`) works in batches, one transaction each:
1. claim up to `batch_size` open tickets overdue for one kind of breach and not yet marked
   breached for it, locking their rows with FOR UPDATE SKIP LOCKED on Postgres (two instances take
   different tickets and never wait for each other); on SQLite the transaction holds the write lock;
2. for each, insert the breach row (primary key: ticket and kind; ON CONFLICT DO NOTHING) and only
   if this insert created it, escalate the ticket (level + 1, ESCALATED, `ticket.escalated` with
   `automatic: true`). The ticket's breach mark is set in the same transaction, so the ticket is no
   longer a candidate once it commits.

`run_scheduler` repeats passes every `escalation_interval_seconds`; tests call the pass directly
with the `now` they want.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from crm_common.db import Database
from crm_common.models import UtcDateTime
from sqlalchemy import literal, select, text

from ticket_svc.events import publish
from ticket_svc.models import RESOLUTION_PENDING_SQL, RESPONSE_PENDING_SQL, BreachKind, Ticket
from ticket_svc.service.policies import terms_for
from ticket_svc.service.tickets import overdue_sql
from ticket_svc.service.workflow import escalate_ticket, record_breach

log = logging.getLogger("crm.ticket.scheduler")

REASONS = {
    BreachKind.FIRST_RESPONSE: "First response SLA breached (due {due})",
    BreachKind.RESOLUTION: "Resolution SLA breached (due {due})",
}


@dataclass(frozen=True)
class Escalated:
    ticket_id: object
    kind: BreachKind
    escalation_level: int


def _candidates(kind: BreachKind, now: datetime, batch_size: int):
    if kind == BreachKind.FIRST_RESPONSE:
        due, pending = Ticket.first_response_due_at, RESPONSE_PENDING_SQL
    else:
        due, pending = Ticket.resolution_due_at, RESOLUTION_PENDING_SQL
    return (
        select(Ticket)
        .where(
            # The partial index's own predicate, literally, so Postgres uses it.
            text(pending),
            due.is_not(None),
            # Implied by the next condition (a stop is never in the future); lets the index range.
            due < literal(now, UtcDateTime()),
            overdue_sql(due, now),
            Ticket.archived_at.is_(None),  # an archived ticket is not worked on: no escalation
        )
        .order_by(due)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def _escalate_batch(db: Database, kind: BreachKind, now: datetime, batch_size: int) -> tuple[int, list]:
    done: list[Escalated] = []
    async with db.transaction() as session:
        tickets = (await session.execute(_candidates(kind, now, batch_size))).scalars().all()
        for ticket in tickets:
            due = (
                ticket.first_response_due_at
                if kind == BreachKind.FIRST_RESPONSE
                else ticket.resolution_due_at
            )
            if not await record_breach(
                session, ticket, kind, now=now, escalated=True, escalation_level=ticket.escalation_level + 1
            ):
                continue  # another instance escalated this breach already
            terms = await terms_for(session, ticket.sla_revision_id)
            pending = publish.Pending(ticket)
            await escalate_ticket(
                session,
                ticket,
                terms,
                reason=REASONS[kind].format(due=due.isoformat().replace("+00:00", "Z")),
                now=now,
                actor_id=None,
                pending=pending,
                automatic=True,
            )
            await pending.write(session)
            done.append(Escalated(ticket.id, kind, ticket.escalation_level))
    return len(tickets), done


async def escalate_breaches(db: Database, *, now: datetime, batch_size: int = 100) -> list[Escalated]:
    """One pass: escalate every breach due by `now` that no one escalated yet."""
    escalated: list[Escalated] = []
    for kind in (BreachKind.FIRST_RESPONSE, BreachKind.RESOLUTION):
        while True:
            seen, done = await _escalate_batch(db, kind, now, batch_size)
            escalated += done
            if seen < batch_size:
                break
    return escalated


async def run_scheduler(
    db: Database, *, clock: Callable[[], datetime], interval: float, batch_size: int
) -> None:
    while True:
        try:
            done = await escalate_breaches(db, now=clock(), batch_size=batch_size)
            if done:
                log.info("escalated %d SLA breaches", len(done))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("escalation pass failed; retrying at the next interval")
        await asyncio.sleep(interval)
