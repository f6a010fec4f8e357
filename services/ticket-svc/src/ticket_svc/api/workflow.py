"""A ticket's workflow: status changes, escalation, the satisfaction rating."""

import uuid
from datetime import timedelta

from crm_common.app import SessionDep
from crm_common.errors import problem_doc
from fastapi import Request, Response

from ticket_svc.api.deps import IfMatch, Now, TicketCaller, settings_of, tickets_router
from ticket_svc.api.tickets import ticket_response
from ticket_svc.schemas import (
    TicketEscalateRequest,
    TicketRead,
    TicketSatisfactionRequest,
    TicketStatusChangeRequest,
)
from ticket_svc.service import workflow

router = tickets_router()


@router.post(
    "/{ticket_id}/status",
    operation_id="tickets_change_status",
    summary="Move a ticket to another status (resolve, close, reopen, pend...)",
    responses=problem_doc(404, 412, 422),
)
async def change_status(
    ticket_id: uuid.UUID,
    body: TicketStatusChangeRequest,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await workflow.change_status(
        session, ticket_id=ticket_id, data=body, if_match=if_match, actor_id=user.id, now=now, caller=user
    )
    return await ticket_response(session, ticket, now, response)


@router.post(
    "/{ticket_id}/escalate",
    operation_id="tickets_escalate",
    summary="Escalate a ticket: one level up, status ESCALATED",
    responses=problem_doc(404, 412, 422),
)
async def escalate(
    ticket_id: uuid.UUID,
    body: TicketEscalateRequest,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await workflow.escalate(
        session,
        ticket_id=ticket_id,
        reason=body.reason,
        body_version=body.version,
        if_match=if_match,
        actor_id=user.id,
        now=now,
        caller=user,
    )
    return await ticket_response(session, ticket, now, response)


@router.post(
    "/{ticket_id}/satisfaction",
    operation_id="tickets_rate_satisfaction",
    summary="Record the customer's satisfaction rating (1-5) of a resolved or closed ticket",
    responses=problem_doc(404, 409, 422),
)
async def rate_satisfaction(
    ticket_id: uuid.UUID,
    body: TicketSatisfactionRequest,
    request: Request,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
) -> TicketRead:
    window = timedelta(hours=settings_of(request).satisfaction_change_window_hours)
    ticket = await workflow.rate_satisfaction(
        session, ticket_id=ticket_id, data=body, now=now, change_window=window, caller=user
    )
    return await ticket_response(session, ticket, now, response)
