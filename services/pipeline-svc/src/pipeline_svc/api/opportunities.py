import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.batch import BatchReadRequest
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import etag
from crm_common.errors import FieldError, problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from fastapi import APIRouter, Depends, Query, Response
from pydantic_core import to_json

from pipeline_svc.api.deps import IfMatch, SalesCaller, SalesReader
from pipeline_svc.models import OpportunityStatus
from pipeline_svc.schemas import (
    InvoiceRead,
    OpportunityBatchCreateRequest,
    OpportunityBatchResult,
    OpportunityBatchUpdateRequest,
    OpportunityChanges,
    OpportunityCreateRequest,
    OpportunityLineItemCreateRequest,
    OpportunityLineItemUpdateRequest,
    OpportunityLoseRequest,
    OpportunityPage,
    OpportunityRead,
    OpportunityStageChangeRequest,
    OpportunityUpdateRequest,
    OpportunityWinRequest,
    OpportunityWinResult,
    PipelineBoard,
    SalesForecast,
)
from pipeline_svc.service import archiving, batch, line_items, transitions
from pipeline_svc.service import board as board_service
from pipeline_svc.service import forecast as forecast_service
from pipeline_svc.service import opportunities as service
from pipeline_svc.service.errors import InvalidInput

router = APIRouter(prefix="/api/v1/opportunities", tags=["opportunities"], responses=problem_doc(401, 403))


def _read(response: Response, view: OpportunityRead) -> OpportunityRead:
    response.headers["ETag"] = etag(view.version)
    return view


@router.post(
    "",
    status_code=201,
    operation_id="opportunities_create",
    summary="Create an opportunity (starts in the first active stage)",
    responses=problem_doc(409, 422),
)
async def create_opportunity(
    body: OpportunityCreateRequest, session: SessionDep, user: SalesCaller, response: Response
) -> OpportunityRead:
    opportunity = await service.create_opportunity(session, data=body, actor_id=user.id, caller=user)
    response.headers["Location"] = f"/api/v1/opportunities/{opportunity.id}"
    return _read(response, await service.view(session, opportunity))


@router.get(
    "", operation_id="opportunities_list", summary="List and search opportunities", responses=problem_doc(422)
)
async def list_opportunities(
    session: SessionDep,
    user: SalesCaller,
    params: Annotated[PageParams, Depends(sync_page_params)],
    q: Annotated[str | None, Query(max_length=200, description="Search the title.")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
    stage_id: Annotated[uuid.UUID | None, Query(alias="stageId")] = None,
    status: Annotated[list[OpportunityStatus], any_of()] = [],
    close_from: Annotated[date | None, Query(alias="expectedCloseFrom")] = None,
    close_to: Annotated[date | None, Query(alias="expectedCloseTo")] = None,
    archived: ArchivedParam = "exclude",
) -> OpportunityPage:
    items, total = await service.list_opportunities(
        session,
        caller=user,
        params=params,
        q=q,
        customer_id=customer_id,
        owner_id=owner_id,
        team_id=team_id,
        stage_id=stage_id,
        status=status,
        close_from=close_from,
        close_to=close_to,
        archived=archived,
    )
    return OpportunityPage.of(await service.views(session, items), total, params)


@router.get(
    "/forecast",
    operation_id="opportunities_forecast",
    summary="Sales forecast for a period, per currency",
    responses=problem_doc(422),
)
async def forecast(
    session: SessionDep,
    user: SalesCaller,
    period: Annotated[Literal["month", "quarter", "year"] | None, Query()] = None,
    date_from: Annotated[
        date | None, Query(alias="from", description="Explicit range start (inclusive).")
    ] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Explicit range end (inclusive).")] = None,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
) -> SalesForecast:
    """Open opportunities whose expectedCloseDate falls in the current calendar month, quarter (the
    default) or year, or in `from`..`to`."""
    if date_from is not None or date_to is not None:
        errors = []
        if period is not None:
            errors.append(
                FieldError(field="period", message="give a period or from/to, not both", code="conflict")
            )
        if date_from is None or date_to is None:
            errors.append(
                FieldError(
                    field="from" if date_from is None else "to",
                    message="required with the other",
                    code="missing",
                )
            )
        elif date_from > date_to:
            errors.append(FieldError(field="to", message="must not be before from", code="range"))
        if errors:
            raise InvalidInput("The forecast range is not valid; see `errors`.", errors=errors)
        name, start, end = "custom", date_from, date_to
    else:
        name = period or "quarter"
        start, end = forecast_service.period_range(name, datetime.now(UTC).date())
    return await forecast_service.forecast(
        session, period=name, start=start, end=end, owner_id=owner_id, team_id=team_id, caller=user
    )


@router.get(
    "/board",
    response_model=PipelineBoard,
    operation_id="opportunities_board",
    summary="The pipeline board: a column per active stage with cards and per-currency summaries",
    responses=problem_doc(422),
)
async def board(
    session: SessionDep,
    user: SalesCaller,
    owner_id: Annotated[uuid.UUID | None, Query(alias="ownerId")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    cards_per_column: Annotated[int, Query(alias="cardsPerColumn", ge=1, le=200)] = 25,
) -> Response:
    result = await board_service.board(
        session,
        owner_id=owner_id,
        team_id=team_id,
        customer_id=customer_id,
        cards_per_column=cards_per_column,
        caller=user,
    )
    # Already in the documented shape (PipelineBoard): serialised once, not re-validated card by card.
    return Response(to_json(result), media_type="application/json")


_BATCH = (
    " Up to 100 items; answered 200 with one result per item in order (its own status, the id and the "
    "opportunity, or a problem): refused items changed nothing, the others are saved. Retry safely with "
    "an `Idempotency-Key`. See docs/api-guide.md, Batches."
)


@router.post(
    "/batch/create",
    operation_id="opportunities_batch_create",
    summary="Create up to 100 opportunities",
    description="Each item as in `POST /opportunities`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_create(
    body: OpportunityBatchCreateRequest, session: SessionDep, user: SalesCaller
) -> OpportunityBatchResult:
    return await batch.create_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/update",
    operation_id="opportunities_batch_update",
    summary="Update up to 100 opportunities",
    description="Each item: the opportunity's `id`, the fields to change and the `version` read, as in "
    "`PATCH /opportunities/{id}`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_update(
    body: OpportunityBatchUpdateRequest, session: SessionDep, user: SalesCaller
) -> OpportunityBatchResult:
    return await batch.update_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/upsert",
    operation_id="opportunities_batch_upsert",
    summary="Create or update up to 100 opportunities by externalId",
    description="Every item carries `externalId`: an opportunity holding it has the fields sent updated "
    "(200; its customer stays), else one is created (201)." + _BATCH,
    responses=problem_doc(422),
)
async def batch_upsert(
    body: OpportunityBatchCreateRequest, session: SessionDep, user: SalesCaller
) -> OpportunityBatchResult:
    return await batch.upsert_many(session, body.items, actor_id=user.id, caller=user)


@router.post(
    "/batch/read",
    operation_id="opportunities_batch_read",
    summary="Read up to 100 opportunities by id",
    description="One result per id, in order: 200 with the opportunity, or 404." + _BATCH,
    responses=problem_doc(422),
)
async def batch_read(
    body: BatchReadRequest, session: SessionDep, user: SalesReader
) -> OpportunityBatchResult:
    return await batch.read_many(session, body.ids, caller=user)


@router.get(
    "/changes",
    operation_id="opportunities_changes",
    summary="Changes feed: opportunities changed since a cursor",
    description="For mirrors (docs/sync.md): opportunities as the list answers them, oldest change first. "
    "Start with no cursor; keep `next` for the following call, also when `hasMore` is false.",
    responses=problem_doc(422),
)
async def opportunity_changes(
    session: SessionDep, user: SalesCaller, params: Annotated[ChangesParams, Depends(changes_params)]
) -> OpportunityChanges:
    return await service.changes_feed(session, params, caller=user)


@router.get(
    "/{opportunity_id}",
    operation_id="opportunities_get",
    summary="Get an opportunity",
    responses=problem_doc(404),
)
async def get_opportunity(
    opportunity_id: uuid.UUID, session: SessionDep, user: SalesCaller, response: Response
) -> OpportunityRead:
    opportunity = await service.load_opportunity(session, opportunity_id, caller=user)
    return _read(response, await service.view(session, opportunity))


@router.patch(
    "/{opportunity_id}",
    operation_id="opportunities_update",
    summary="Edit an opportunity's fields",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_opportunity(
    opportunity_id: uuid.UUID,
    body: OpportunityUpdateRequest,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await service.update_opportunity(
        session, opportunity_id=opportunity_id, data=body, if_match=if_match, actor_id=user.id, caller=user
    )
    return _read(response, await service.view(session, opportunity))


@router.post(
    "/{opportunity_id}/stage",
    operation_id="opportunities_update_stage",
    summary="Move an opportunity to another open stage (checks stage requirements)",
    responses=problem_doc(404, 412, 422),
)
async def update_stage(
    opportunity_id: uuid.UUID,
    body: OpportunityStageChangeRequest,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await transitions.move_stage(
        session,
        opportunity_id=opportunity_id,
        stage_id=body.stage_id,
        if_match=if_match,
        body_version=body.version,
        actor_id=user.id,
        caller=user,
    )
    return _read(response, await service.view(session, opportunity))


@router.post(
    "/{opportunity_id}/win",
    operation_id="opportunities_win",
    summary="Win an OPEN opportunity; creates its DRAFT invoice",
    responses=problem_doc(404, 409, 412, 422),
)
async def win(
    opportunity_id: uuid.UUID,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
    body: OpportunityWinRequest | None = None,
) -> OpportunityWinResult:
    won, invoice = await transitions.win(
        session,
        opportunity_id=opportunity_id,
        if_match=if_match,
        body_version=body.version if body else None,
        actor_id=user.id,
        caller=user,
    )
    return OpportunityWinResult(opportunity=_read(response, won), invoice=InvoiceRead.model_validate(invoice))


@router.post(
    "/{opportunity_id}/lose",
    operation_id="opportunities_lose",
    summary="Lose an OPEN opportunity (lostReason required)",
    responses=problem_doc(404, 409, 412, 422),
)
async def lose(
    opportunity_id: uuid.UUID,
    body: OpportunityLoseRequest,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await transitions.lose(
        session,
        opportunity_id=opportunity_id,
        reason=body.lost_reason,
        if_match=if_match,
        body_version=body.version,
        actor_id=user.id,
        caller=user,
    )
    return _read(response, await service.view(session, opportunity))


@router.post(
    "/{opportunity_id}/products",
    status_code=201,
    operation_id="opportunities_add_product",
    summary="Add a product as a line item; answers the opportunity",
    responses=problem_doc(404, 409, 412, 422),
)
async def add_product(
    opportunity_id: uuid.UUID,
    body: OpportunityLineItemCreateRequest,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await line_items.add_line_item(
        session, opportunity_id=opportunity_id, data=body, if_match=if_match, actor_id=user.id, caller=user
    )
    return _read(response, await service.view(session, opportunity))


@router.patch(
    "/{opportunity_id}/products/{product_id}",
    operation_id="opportunities_update_product",
    summary="Change a line item's quantity, unit price, discount or description",
    responses=problem_doc(404, 409, 412, 422),
)
async def update_product(
    opportunity_id: uuid.UUID,
    product_id: uuid.UUID,
    body: OpportunityLineItemUpdateRequest,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await line_items.update_line_item(
        session,
        opportunity_id=opportunity_id,
        product_id=product_id,
        data=body,
        if_match=if_match,
        actor_id=user.id,
        caller=user,
    )
    return _read(response, await service.view(session, opportunity))


@router.delete(
    "/{opportunity_id}/products/{product_id}",
    operation_id="opportunities_remove_product",
    summary="Remove a line item; answers the opportunity",
    responses=problem_doc(404, 409, 412),
)
async def remove_product(
    opportunity_id: uuid.UUID,
    product_id: uuid.UUID,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await line_items.remove_line_item(
        session,
        opportunity_id=opportunity_id,
        product_id=product_id,
        if_match=if_match,
        actor_id=user.id,
        caller=user,
    )
    return _read(response, await service.view(session, opportunity))


@router.post(
    "/{opportunity_id}/archive",
    operation_id="opportunities_archive",
    summary="Archive an opportunity",
    description=archive_description("lists, searches, the board and the forecast", "opportunity.purged"),
    responses=problem_doc(404, 412),
)
async def archive_opportunity(
    opportunity_id: uuid.UUID,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await archiving.set_archived(
        session, opportunity_id=opportunity_id, archived=True, if_match=if_match, caller=user
    )
    return _read(response, await service.view(session, opportunity))


@router.post(
    "/{opportunity_id}/restore",
    operation_id="opportunities_restore",
    summary="Restore an archived opportunity",
    description=RESTORE_DESCRIPTION,
    responses=problem_doc(404, 412),
)
async def restore_opportunity(
    opportunity_id: uuid.UUID,
    session: SessionDep,
    user: SalesCaller,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityRead:
    opportunity = await archiving.set_archived(
        session, opportunity_id=opportunity_id, archived=False, if_match=if_match, caller=user
    )
    return _read(response, await service.view(session, opportunity))
