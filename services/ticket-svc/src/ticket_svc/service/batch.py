"""Batch create, update, upsert (by externalId) and read of tickets (crm_common.batch runs them item
by item)."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from crm_common.batch import BatchResult, find_by_external_id, run_batch
from crm_common.errors import not_found
from crm_common.record_scope import ScopedCaller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import Ticket
from ticket_svc.schemas import TicketBatchUpdate, TicketCreateRequest, TicketUpdateRequest
from ticket_svc.service.tickets import create_ticket, in_scope, read_models, update_ticket


def _present(session: AsyncSession, now: datetime):
    return lambda tickets: read_models(session, tickets, now)


def _as_update(item, fields) -> TicketUpdateRequest:
    return TicketUpdateRequest.model_validate(item.model_dump(mode="json", by_alias=True, include=fields))


async def create_many(
    session: AsyncSession,
    items: Sequence[TicketCreateRequest],
    *,
    actor_id: uuid.UUID,
    now: datetime,
    caller: ScopedCaller,
) -> BatchResult:
    async def create(session, item):
        ticket, _ = await create_ticket(session, data=item, actor_id=actor_id, now=now, caller=caller)
        return 201, ticket

    return await run_batch(session, items, create, _present(session, now))


async def update_many(
    session: AsyncSession, items: Sequence[TicketBatchUpdate], *, now: datetime, caller: ScopedCaller
) -> BatchResult:
    async def update(session, item):
        data = _as_update(item, item.model_fields_set - {"id"})
        return 200, await update_ticket(
            session, ticket_id=item.id, data=data, if_match=None, now=now, caller=caller
        )

    return await run_batch(session, items, update, _present(session, now))


async def upsert_many(
    session: AsyncSession,
    items: Sequence[TicketCreateRequest],
    *,
    actor_id: uuid.UUID,
    now: datetime,
    caller: ScopedCaller,
) -> BatchResult:
    async def upsert(session, item: TicketCreateRequest):
        found = await find_by_external_id(session, Ticket, item.external_id)
        if found is None:
            ticket, _ = await create_ticket(session, data=item, actor_id=actor_id, now=now, caller=caller)
            return 201, ticket
        # The customer of a ticket does not change by upsert (a merge moves it).
        data = _as_update(item, item.model_fields_set - {"customer_id"})
        return 200, await update_ticket(
            session, ticket_id=found, data=data, if_match="*", now=now, caller=caller
        )

    return await run_batch(session, items, upsert, _present(session, now))


async def read_many(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, now: datetime, caller: ScopedCaller
) -> BatchResult:
    """Tickets outside the caller's read scope answer 404, like missing ones."""
    query = select(Ticket).where(Ticket.id.in_(ids), in_scope(caller))
    by_id = {t.id: t for t in (await session.execute(query)).scalars()}

    async def read(session, ticket_id):
        if ticket_id not in by_id:
            raise not_found("ticket", ticket_id)
        return 200, by_id[ticket_id]

    return await run_batch(session, ids, read, _present(session, now))
