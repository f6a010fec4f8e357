"""Archive and restore a ticket."""

import uuid

from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, archive_description
from crm_common.errors import problem_doc
from fastapi import Response

from ticket_svc.api.deps import IfMatch, Now, TicketCaller, tickets_router
from ticket_svc.api.tickets import ticket_response
from ticket_svc.schemas import TicketRead
from ticket_svc.service import archiving

router = tickets_router()


@router.post(
    "/{ticket_id}/archive",
    operation_id="tickets_archive",
    summary="Archive a ticket",
    description=archive_description("lists and searches", "ticket.purged")
    + " The SLA scheduler does not escalate an archived ticket.",
    responses=problem_doc(404, 412),
)
async def archive_ticket(
    ticket_id: uuid.UUID,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await archiving.set_archived(
        session, ticket_id=ticket_id, archived=True, if_match=if_match, caller=user
    )
    return await ticket_response(session, ticket, now, response)


@router.post(
    "/{ticket_id}/restore",
    operation_id="tickets_restore",
    summary="Restore an archived ticket",
    description=RESTORE_DESCRIPTION,
    responses=problem_doc(404, 412),
)
async def restore_ticket(
    ticket_id: uuid.UUID,
    session: SessionDep,
    user: TicketCaller,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> TicketRead:
    ticket = await archiving.set_archived(
        session, ticket_id=ticket_id, archived=False, if_match=if_match, caller=user
    )
    return await ticket_response(session, ticket, now, response)
