"""A ticket's communications: messages and internal notes."""

import uuid
from datetime import timedelta
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from fastapi import Depends, Query, Request, Response

from ticket_svc.api.deps import Now, TicketCaller, settings_of, tickets_router
from ticket_svc.models import CommunicationDirection
from ticket_svc.schemas import (
    TicketCommunicationCreateRequest,
    TicketCommunicationPage,
    TicketCommunicationRead,
)
from ticket_svc.service import communications

router = tickets_router()


@router.post(
    "/{ticket_id}/communications",
    status_code=201,
    operation_id="ticket_communications_create",
    summary="Add a message or an internal note to a ticket",
    responses=problem_doc(404, 422),
)
async def add_communication(
    ticket_id: uuid.UUID,
    body: TicketCommunicationCreateRequest,
    request: Request,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
) -> TicketCommunicationRead:
    window = timedelta(hours=settings_of(request).reopen_window_hours)
    communication = await communications.add_communication(
        session, ticket_id=ticket_id, data=body, actor_id=user.id, now=now, reopen_window=window, caller=user
    )
    response.headers["Location"] = f"/api/v1/tickets/{ticket_id}/communications/{communication.id}"
    return TicketCommunicationRead.model_validate(communication)


@router.get(
    "/{ticket_id}/communications/{communication_id}",
    operation_id="ticket_communications_get",
    summary="One communication of a ticket",
    responses=problem_doc(404),
)
async def get_communication(
    ticket_id: uuid.UUID, communication_id: uuid.UUID, session: SessionDep, user: TicketCaller
) -> TicketCommunicationRead:
    communication = await communications.get_communication(
        session, ticket_id=ticket_id, communication_id=communication_id, caller=user
    )
    return TicketCommunicationRead.model_validate(communication)


@router.get(
    "/{ticket_id}/communications",
    operation_id="ticket_communications_list",
    summary="A ticket's communications, oldest first",
    responses=problem_doc(404, 422),
)
async def list_communications(
    ticket_id: uuid.UUID,
    session: SessionDep,
    user: TicketCaller,
    params: Annotated[PageParams, Depends(sync_page_params)],
    internal: Annotated[
        bool | None, Query(description="Only internal notes (true) or only messages (false).")
    ] = None,
    direction: Annotated[list[CommunicationDirection], any_of()] = [],
) -> TicketCommunicationPage:
    items, total = await communications.list_communications(
        session, ticket_id=ticket_id, params=params, internal=internal, direction=direction, caller=user
    )
    return TicketCommunicationPage.of(
        [TicketCommunicationRead.model_validate(c) for c in items], total, params
    )
