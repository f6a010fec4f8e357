"""Ticket batches: create, update, upsert and read up to 100 tickets in one call."""

from crm_common.app import SessionDep
from crm_common.batch import BatchReadRequest
from crm_common.errors import problem_doc

from ticket_svc.api.deps import Now, TicketCaller, TicketReader, tickets_router
from ticket_svc.schemas import TicketBatchCreateRequest, TicketBatchResult, TicketBatchUpdateRequest
from ticket_svc.service import batch

router = tickets_router()


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
