"""HTTP routes of ticket-svc: translate requests to service calls and back."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from crm_common.app import ReadTransactionDep, SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.auth import Principal, require, require_access
from crm_common.batch import BatchReadRequest
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import etag, if_match_header
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, page_params, sync_page_params
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AwareDatetime, StringConstraints

from ticket_svc.models import CommunicationDirection, TicketPriority, TicketStatus, TicketType
from ticket_svc.schemas import (
    SlaPolicyCreateRequest,
    SlaPolicyPage,
    SlaPolicyRead,
    SlaPolicyUpdateRequest,
    TicketBatchCreateRequest,
    TicketBatchResult,
    TicketBatchUpdateRequest,
    TicketChanges,
    TicketCommunicationCreateRequest,
    TicketCommunicationPage,
    TicketCommunicationRead,
    TicketCreateRequest,
    TicketEscalateRequest,
    TicketMetricsReport,
    TicketPage,
    TicketRead,
    TicketSatisfactionRequest,
    TicketStatusChangeRequest,
    TicketUpdateRequest,
)
from ticket_svc.service import archiving, batch, communications, metrics, policies, tickets, workflow

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"], responses=problem_doc(401, 403))
policy_router = APIRouter(
    prefix="/api/v1/sla-policies", tags=["sla-policies"], responses=problem_doc(401, 403)
)

SupportAccess = Annotated[Principal, Depends(require_access("tickets"))]
# Tickets: the caller with their record scopes (crm_common.record_scope).
TicketCaller = Annotated[ScopedCaller, Depends(scoped("tickets"))]
# A POST that only reads (batch/read) needs read access, like a GET.
TicketReader = Annotated[ScopedCaller, Depends(scoped("tickets", "read"))]
Admin = Annotated[Principal, Depends(require("admin"))]
IfMatch = Annotated[str | None, if_match_header("The ETag you read; a stale one is a 412.")]


def current_time(request: Request) -> datetime:
    """The service's clock (tests replace `app.state.clock`)."""
    return request.app.state.clock()


Now = Annotated[datetime, Depends(current_time)]


def _settings(request: Request):
    return request.app.state.settings


async def _ticket_response(session, ticket, now: datetime, response: Response) -> TicketRead:
    response.headers["ETag"] = etag(ticket.version)
    return await tickets.read_model(session, ticket, now)


# --- tickets --------------------------------------------------------------------------------------


@router.post(
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


@router.get("", operation_id="tickets_list", summary="List and search tickets", responses=problem_doc(422))
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
    return TicketPage(
        items=await tickets.read_models(session, items, now),
        total=total,
        page=params.page,
        pageSize=params.page_size,
        next=params.next,
    )


@router.get(
    "/metrics",
    operation_id="tickets_metrics",
    summary="Ticket metrics: volumes, SLA breach rate, response and resolution times, CSAT",
    responses=problem_doc(422),
)
async def ticket_metrics(
    session: ReadTransactionDep,  # SET LOCAL work_mem holds for its transaction only
    user: TicketCaller,
    now: Now,
    created_from: Annotated[
        AwareDatetime | None, Query(alias="from", description="Tickets created at or after this instant.")
    ] = None,
    created_to: Annotated[
        AwareDatetime | None, Query(alias="to", description="Tickets created before this instant.")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
    assigned_to_id: Annotated[uuid.UUID | None, Query(alias="assignedToId")] = None,
    group_by: Annotated[
        Literal["team", "day", "week", "month"] | None,
        Query(
            alias="groupBy", description="Also break the figures down by team or by creation period (UTC)."
        ),
    ] = None,
) -> TicketMetricsReport:
    return await metrics.ticket_metrics(
        session,
        now=now,
        created_from=created_from,
        created_to=created_to,
        team_id=team_id,
        assigned_to_id=assigned_to_id,
        group_by=group_by,
        caller=user,
    )


_BATCH = (
    " Up to 100 items; answered 200 with one result per item in order (its own status, the id and the "
    "ticket, or a problem): refused items changed nothing, the others are saved. Retry safely with an "
    "`Idempotency-Key`. See docs/api-guide.md, Batches."
)


@router.post(
    "/batch/create",
    operation_id="tickets_batch_create",
    summary="Create up to 100 tickets",
    description="Each item as in `POST /tickets`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_create(
    body: TicketBatchCreateRequest, session: SessionDep, user: TicketCaller, now: Now
) -> TicketBatchResult:
    return await batch.create_many(session, body.items, actor_id=user.id, now=now, caller=user)


@router.post(
    "/batch/update",
    operation_id="tickets_batch_update",
    summary="Update up to 100 tickets",
    description="Each item: the ticket's `id`, the fields to change and the `version` read, as in "
    "`PATCH /tickets/{id}`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_update(
    body: TicketBatchUpdateRequest, session: SessionDep, user: TicketCaller, now: Now
) -> TicketBatchResult:
    return await batch.update_many(session, body.items, now=now, caller=user)


@router.post(
    "/batch/upsert",
    operation_id="tickets_batch_upsert",
    summary="Create or update up to 100 tickets by externalId",
    description="Every item carries `externalId`: a ticket holding it has the fields sent updated (200; "
    "its customer stays), else one is created (201)." + _BATCH,
    responses=problem_doc(422),
)
async def batch_upsert(
    body: TicketBatchCreateRequest, session: SessionDep, user: TicketCaller, now: Now
) -> TicketBatchResult:
    return await batch.upsert_many(session, body.items, actor_id=user.id, now=now, caller=user)


@router.post(
    "/batch/read",
    operation_id="tickets_batch_read",
    summary="Read up to 100 tickets by id",
    description="One result per id, in order: 200 with the ticket, or 404." + _BATCH,
    responses=problem_doc(422),
)
async def batch_read(
    body: BatchReadRequest, session: SessionDep, user: TicketReader, now: Now
) -> TicketBatchResult:
    return await batch.read_many(session, body.ids, now=now, caller=user)


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
    return await _ticket_response(
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
    return await _ticket_response(session, ticket, now, response)


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
    return await _ticket_response(session, ticket, now, response)


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
    return await _ticket_response(session, ticket, now, response)


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
    return await _ticket_response(session, ticket, now, response)


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
    return await _ticket_response(session, ticket, now, response)


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
    window = timedelta(hours=_settings(request).satisfaction_change_window_hours)
    ticket = await workflow.rate_satisfaction(
        session, ticket_id=ticket_id, data=body, now=now, change_window=window, caller=user
    )
    return await _ticket_response(session, ticket, now, response)


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
    window = timedelta(hours=_settings(request).reopen_window_hours)
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
    return TicketCommunicationPage(
        items=[TicketCommunicationRead.model_validate(c) for c in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
        next=params.next,
    )


# --- SLA policies ---------------------------------------------------------------------------------


@policy_router.post(
    "",
    status_code=201,
    operation_id="sla_policies_create",
    summary="Create an SLA policy",
    responses=problem_doc(422),
)
async def create_policy(
    body: SlaPolicyCreateRequest, session: SessionDep, user: Admin, now: Now, response: Response
) -> SlaPolicyRead:
    policy = await policies.create_policy(session, data=body, actor_id=user.id, now=now)
    response.headers["Location"] = f"/api/v1/sla-policies/{policy.id}"
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)


@policy_router.get(
    "", operation_id="sla_policies_list", summary="List SLA policies", responses=problem_doc(422)
)
async def list_policies(
    session: SessionDep,
    user: SupportAccess,
    params: Annotated[PageParams, Depends(page_params)],
    is_active: Annotated[bool | None, Query(alias="isActive")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
) -> SlaPolicyPage:
    items, total = await policies.list_policies(session, params=params, is_active=is_active, team_id=team_id)
    return SlaPolicyPage(
        items=[SlaPolicyRead.model_validate(p) for p in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )


@policy_router.get(
    "/{policy_id}", operation_id="sla_policies_get", summary="Get an SLA policy", responses=problem_doc(404)
)
async def get_policy(
    policy_id: uuid.UUID, session: SessionDep, user: SupportAccess, response: Response
) -> SlaPolicyRead:
    policy = await policies.get_policy(session, policy_id)
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)


@policy_router.patch(
    "/{policy_id}",
    operation_id="sla_policies_update",
    summary="Change an SLA policy (new tickets run on the new terms; If-Match or version required)",
    responses=problem_doc(404, 412, 422, 428),
)
async def update_policy(
    policy_id: uuid.UUID,
    body: SlaPolicyUpdateRequest,
    session: SessionDep,
    user: Admin,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> SlaPolicyRead:
    policy = await policies.update_policy(session, policy_id=policy_id, data=body, if_match=if_match, now=now)
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)
