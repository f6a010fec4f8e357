"""Ticket routes: open, list and search, the changes feed, read and edit one ticket."""

import uuid
from datetime import datetime
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.archive import ArchivedParam
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from fastapi import Depends, Query, Response
from pydantic import AwareDatetime, StringConstraints

from ticket_svc.api.deps import IfMatch, Now, TicketCaller, tickets_router
from ticket_svc.models import TicketPriority, TicketStatus, TicketType
from ticket_svc.schemas import TicketChanges, TicketCreateRequest, TicketPage, TicketRead, TicketUpdateRequest
from ticket_svc.service import tickets

# POST/GET /tickets. The record routes are in `router`, registered after the fixed paths under
# /tickets (metrics, batch) so that those are not read as a ticket id (api/__init__.py).
collection = tickets_router()
router = tickets_router()


async def ticket_response(session, ticket, now: datetime, response: Response) -> TicketRead:
    response.headers["ETag"] = etag(ticket.version)
    return await tickets.read_model(session, ticket, now)


@collection.post(
    "",
    status_code=201,
    operation_id="tickets_create",
    summary="Open a ticket for a customer",
    responses=problem_doc(422),
)
async def create_ticket(
    body: TicketCreateRequest, session: SessionDep, user: TicketCaller, now: Now, response: Response
) -> TicketRead:
    ticket, read = await tickets.create_ticket(session, data=body, actor_id=user.id, now=now, caller=user)
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    response.headers["ETag"] = etag(ticket.version)
    return read


@collection.get(
    "", operation_id="tickets_list", summary="List and search tickets", responses=problem_doc(422)
)
async def list_tickets(
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    params: Annotated[PageParams, Depends(sync_page_params)],
    q: Annotated[str | None, Query(max_length=200, description="Search ticket number and subject.")] = None,
    status: Annotated[list[TicketStatus], any_of()] = [],
    priority: Annotated[list[TicketPriority], any_of()] = [],
    type: Annotated[list[TicketType], any_of()] = [],
    assigned_to_id: Annotated[uuid.UUID | None, Query(alias="assignedToId")] = None,
    unassigned: Annotated[
        bool | None, Query(description="Only tickets without (true) / with (false) an assignee.")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    breached: Annotated[
        bool | None,
        Query(description="Tickets with (true) / without (false) an SLA breach, recorded or overdue now."),
    ] = None,
    tag: Annotated[
        list[Annotated[str, StringConstraints(max_length=100)]], any_of("Any of these tags.", max_items=100)
    ] = [],
    created_from: Annotated[AwareDatetime | None, Query(alias="createdFrom")] = None,
    created_to: Annotated[AwareDatetime | None, Query(alias="createdTo")] = None,
    archived: ArchivedParam = "exclude",
) -> TicketPage:
    items, total = await tickets.list_tickets(
        session,
        caller=user,
        params=params,
        now=now,
        q=q,
        status=status,
        priority=priority,
        type_=type,
        assigned_to_id=assigned_to_id,
        unassigned=unassigned,
        team_id=team_id,
        customer_id=customer_id,
        breached=breached,
        tags=tag,
        created_from=created_from,
        created_to=created_to,
        archived=archived,
    )
    return TicketPage.of(await tickets.read_models(session, items, now), total, params)


@router.get(
    "/changes",
    operation_id="tickets_changes",
    summary="Changes feed: tickets changed since a cursor",
    description="For mirrors (docs/sync.md): tickets as the list answers them, oldest change first. "
    "Start with no cursor; keep `next` for the following call, also when `hasMore` is false.",
    responses=problem_doc(422),
)
async def ticket_changes(
    session: SessionDep,
    user: TicketCaller,
    params: Annotated[ChangesParams, Depends(changes_params)],
    now: Now,
) -> TicketChanges:
    return await tickets.changes_feed(session, params, now, caller=user)


@router.get("/{ticket_id}", operation_id="tickets_get", summary="Get a ticket", responses=problem_doc(404))
async def get_ticket(
    ticket_id: uuid.UUID, session: SessionDep, user: TicketCaller, now: Now, response: Response
) -> TicketRead:
    return await ticket_response(
        session, await tickets.get_ticket(session, ticket_id, caller=user), now, response
    )


@router.patch(
    "/{ticket_id}",
    operation_id="tickets_update",
    summary="Edit a ticket's fields (If-Match or version required)",
    responses=problem_doc(404, 412, 422, 428),
)
async def update_ticket(
    ticket_id: uuid.UUID,
    body: TicketUpdateRequest,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await tickets.update_ticket(
        session, ticket_id=ticket_id, data=body, if_match=if_match, now=now, caller=user
    )
    return await ticket_response(session, ticket, now, response)
