"""Ticket numbers, TKT-YYYY-NNNNNN, gap-free: crm_common.numbering's algorithm (ensure the year's
counter row, then increment it under its lock, held until commit).

The counter row is the one thing every create of a year waits for, so it is taken as late and held
as briefly as possible: on Postgres the ticket is inserted first under a placeholder number, then a
single statement runs that same increment, numbers the ticket and writes its `ticket.created` outbox
row; only the commit follows. (SQLite has one writer at a time anyway: there the number is simply
taken before the insert.)
"""

import json

import sqlalchemy as sa
from crm_common import numbering
from crm_common.db import OUTBOX_WRITTEN, after_commit
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ticket_svc.models import Ticket, TicketNumberCounter


async def next_ticket_number(session: AsyncSession, year: int) -> str:
    return await numbering.next_number(session, TicketNumberCounter, "TKT", year)


_NUMBER_AND_PUBLISH = sa.text(
    """
    WITH n AS (
        UPDATE ticket_number_counters SET last_value = last_value + 1
        WHERE year = :year RETURNING last_value
    ), t AS (
        UPDATE tickets
        SET ticket_number = 'TKT-' || :year || '-' || lpad(n.last_value::text, greatest(6, length(n.last_value::text)), '0')
        FROM n WHERE tickets.id = :ticket_id
        RETURNING tickets.ticket_number
    ), o AS (
        INSERT INTO event_outbox (event_id, routing_key, payload, created_at, state, attempts)
        SELECT :event_id, :routing_key,
               jsonb_set(CAST(:payload AS jsonb), '{data,ticketNumber}', to_jsonb(t.ticket_number))::json,
               :created_at, 'PENDING', 0
        FROM t
    )
    SELECT ticket_number FROM t
    """
).bindparams(
    sa.bindparam("year", type_=sa.Integer()),
    sa.bindparam("ticket_id", type_=sa.Uuid()),
    sa.bindparam("event_id", type_=sa.Uuid()),
    sa.bindparam("routing_key", type_=sa.String()),
    sa.bindparam("payload", type_=sa.Text()),
    sa.bindparam("created_at", type_=sa.DateTime(timezone=True)),
)


async def insert_numbered(session: AsyncSession, ticket: Ticket, year: int, created) -> None:
    """Insert `ticket` with its number and its `ticket.created` event; `created(ticket)` builds
    the event once the ticket is flushed (its ticketNumber is filled in by the database)."""
    if session.bind.dialect.name != "postgresql":
        ticket.ticket_number = await next_ticket_number(session, year)
        session.add(ticket)
        await session.flush()
        await add_events(session, created(ticket))
        return
    # Both statements that wait for the counter row (ensuring it waits for its holder too) wait a
    # bounded time: past it, 503 OVERLOADED and nothing written (crm_common.numbering).
    async with numbering.bounded_wait(session):
        await numbering.ensure_year(session, TicketNumberCounter, year)
        ticket.ticket_number = ticket.id.hex  # a unique placeholder, 32 characters
        session.add(ticket)
        await session.flush()
        event: CloudEvent = created(ticket)
        number = (
            await session.execute(
                _NUMBER_AND_PUBLISH,
                {
                    "year": year,
                    "ticket_id": ticket.id,
                    "event_id": event.id,
                    "routing_key": event.routing_key,
                    "payload": json.dumps(event.model_dump(mode="json", exclude_none=True)),
                    "created_at": utcnow(),
                },
            )
        ).scalar_one()
    set_committed_value(ticket, "ticket_number", number)
    notify = session.info.get(OUTBOX_WRITTEN)
    if notify:
        after_commit(session, notify)


__all__ = ["insert_numbered", "next_ticket_number"]
