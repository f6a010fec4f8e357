"""HTTP routes of customers (`/api/v1/customers`): translate requests to service calls and back."""

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from crm_common import directory
from crm_common.app import SessionDep
from crm_common.archive import RESTORE_DESCRIPTION, ArchivedParam, archive_description
from crm_common.batch import BatchReadRequest
from crm_common.changes import ChangesParams, changes_params
from crm_common.concurrency import IfMatch, etag
from crm_common.errors import problem_doc
from crm_common.pagination import (
    MAX_FILTER_IDS,
    PageParams,
    any_of,
    page_params,
    query_model,
    sync_page_params,
)
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from customer_svc.api.deps import AdminAccess, CustomerAccess, CustomerReader, Importer
from customer_svc.models import CustomerStatus, CustomerType, Priority
from customer_svc.schemas import (
    ConvertResult,
    Currency,
    CurrencyRanking,
    CustomerAssignRequest,
    CustomerBatchCreateRequest,
    CustomerBatchResult,
    CustomerBatchUpdateRequest,
    CustomerBatchUpsertRequest,
    CustomerChanges,
    CustomerConvertRequest,
    CustomerCreateRequest,
    CustomerMergeRequest,
    CustomerPage,
    CustomerRanking,
    CustomerRead,
    CustomerUpdateRequest,
    ImportResult,
    MergeResult,
    OpportunityDraftRead,
    RankedCustomer,
    SegmentFilter,
    SegmentPreviewRequest,
    Tag,
)
from customer_svc.service import (
    actions,
    archiving,
    batch,
    customers,
    erasure,
    exporter,
    importer,
    merge,
    ranking,
    segments,
)
from customer_svc.service.errors import UnsupportedImportFormat
from customer_svc.service.query import sort_clauses

router = APIRouter(prefix="/api/v1/customers", tags=["customers"], responses=problem_doc(401, 403))


async def list_filter(
    q: Annotated[
        str | None, Query(max_length=200, description="Substring of number, name, email or company.")
    ] = None,
    status: Annotated[list[CustomerStatus], any_of()] = [],
    type: Annotated[list[CustomerType], any_of()] = [],
    priority: Annotated[list[Priority], any_of()] = [],
    assigned_to_id: Annotated[list[uuid.UUID], any_of(alias="assignedToId", max_items=MAX_FILTER_IDS)] = [],
    team_id: Annotated[list[uuid.UUID], any_of(alias="teamId", max_items=MAX_FILTER_IDS)] = [],
    tags: Annotated[list[Tag], any_of("Customers with any of these tags.", max_items=100)] = [],
) -> tuple[str | None, SegmentFilter]:
    """The list view's search and filters (also used by the export). `async` though it awaits
    nothing: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request."""
    return q, query_model(
        SegmentFilter,
        status=status,
        type=type,
        priority=priority,
        assigned_to_id=assigned_to_id,
        team_id=team_id,
        tags=tags,
    )


ListFilter = Annotated[tuple[str | None, SegmentFilter], Depends(list_filter)]


@router.post(
    "",
    status_code=201,
    operation_id="customers_create",
    summary="Create a customer or lead",
    responses=problem_doc(409, 422),
)
async def create_customer(
    body: CustomerCreateRequest, session: SessionDep, user: CustomerAccess, response: Response
) -> CustomerRead:
    # The assignee's name is read before the create takes the customer-number counter's row lock,
    # which is held to commit: every statement after it makes every other create wait longer.
    names = await directory.user_names(session, [body.assigned_to_id or user.id])
    customer = await customers.create_customer(session, data=body, caller=user)
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    response.headers["ETag"] = etag(customer.version)
    return customers.read_with(customer, names)


@router.get(
    "", operation_id="customers_list", summary="List and search customers", responses=problem_doc(422)
)
async def list_customers(
    session: SessionDep,
    user: CustomerAccess,
    params: Annotated[PageParams, Depends(sync_page_params)],
    filters: ListFilter,
    archived: ArchivedParam = "exclude",
) -> CustomerPage:
    q, f = filters
    items, total, exact = await customers.list_page(
        session, caller=user, params=params, q=q, f=f, archived=archived
    )
    return CustomerPage.of(items, total, params, exact=exact)


@router.get(
    "/changes",
    operation_id="customers_changes",
    summary="Changes feed: customers changed or merged away since a cursor",
    description="For mirrors (docs/sync.md): customers as the list answers them, oldest change first, and "
    "each customer merged into another as a tombstone `{id, deleted: true, mergedInto}`. Start with no "
    "cursor; keep `next` for the following call, also when `hasMore` is false.",
    responses=problem_doc(422),
)
async def customer_changes(
    session: SessionDep, user: CustomerReader, params: Annotated[ChangesParams, Depends(changes_params)]
) -> CustomerChanges:
    return await customers.changes_feed(session, params, caller=user)


_BATCH = (
    " Up to 100 items; answered 200 with one result per item in order (its own status, the id and the "
    "customer, or a problem): refused items changed nothing, the others are saved. Retry safely with "
    "an `Idempotency-Key`. See docs/api-guide.md, Batches."
)


@router.post(
    "/batch/create",
    operation_id="customers_batch_create",
    summary="Create up to 100 customers",
    description="Each item as in `POST /customers` (201, or 409 `CUSTOMER_EMAIL_EXISTS`...)." + _BATCH,
    responses=problem_doc(422),
)
async def batch_create(
    body: CustomerBatchCreateRequest, session: SessionDep, user: CustomerAccess
) -> CustomerBatchResult:
    return await batch.create_many(session, body.items, caller=user)


@router.post(
    "/batch/update",
    operation_id="customers_batch_update",
    summary="Update up to 100 customers",
    description="Each item: the customer's `id`, the fields to change and optionally the `version` read "
    "(412 when stale), as in `PATCH /customers/{id}`." + _BATCH,
    responses=problem_doc(422),
)
async def batch_update(
    body: CustomerBatchUpdateRequest, session: SessionDep, user: CustomerAccess
) -> CustomerBatchResult:
    return await batch.update_many(session, body.items, caller=user)


@router.post(
    "/batch/upsert",
    operation_id="customers_batch_upsert",
    summary="Create or update up to 100 customers by email or externalId",
    description="`idProperty` (`email`, the default, or `externalId`) finds an existing live customer: its "
    "fields sent are updated (200), else the customer is created (201)." + _BATCH,
    responses=problem_doc(422),
)
async def batch_upsert(
    body: CustomerBatchUpsertRequest, session: SessionDep, user: CustomerAccess
) -> CustomerBatchResult:
    return await batch.upsert_many(session, body.items, id_property=body.id_property, caller=user)


@router.post(
    "/batch/read",
    operation_id="customers_batch_read",
    summary="Read up to 100 customers by id",
    description="One result per id, in order: 200 with the customer, or 404." + _BATCH,
    responses=problem_doc(422),
)
async def batch_read(
    body: BatchReadRequest, session: SessionDep, user: CustomerReader
) -> CustomerBatchResult:
    return await batch.read_many(session, body.ids, caller=user)


@router.post(
    "/merge",
    operation_id="customers_merge",
    summary="Merge a duplicate customer into another",
    description="One transaction: the primary's fields follow `mergeRules` (`primary` is the default; "
    "`secondary` and `latest` take the secondary's value when it is set; `combine` unites tags and joins "
    "notes), custom fields are merged with the primary winning conflicts, addresses and opportunity "
    "totals move to the primary, and the secondary becomes INACTIVE with `mergedIntoId` and a note. "
    "Other services re-point their records on `customer.merged`.",
    responses=problem_doc(404, 409, 422),
)
async def merge_customers(
    body: CustomerMergeRequest, session: SessionDep, user: CustomerAccess
) -> MergeResult:
    primary, secondary = await merge.merge_customers(session, data=body, caller=user)
    primary_read, secondary_read = await customers.to_read(session, [primary, secondary])
    return MergeResult(customer=primary_read, merged_customer=secondary_read)


@router.post(
    "/segments/preview",
    operation_id="segments_preview",
    summary="Evaluate an ad hoc segment filter: a page of customers and their count",
    description='The body is `{"filter": {...}}`: the same filter a saved segment holds, evaluated '
    "without saving it. Merged customers never match.",
    responses=problem_doc(422),
)
async def preview_segment(
    body: SegmentPreviewRequest,
    session: SessionDep,
    user: CustomerReader,
    params: Annotated[PageParams, Depends(page_params)],
) -> CustomerPage:
    items, total = await segments.evaluate(session, caller=user, f=body.filter, params=params)
    return CustomerPage(
        items=await customers.to_read(session, items),
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )


_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/json-lines": "jsonl",
}


@router.post(
    "/import",
    operation_id="customers_import",
    summary="Import customers from CSV or JSON lines (upsert by email)",
    description="Send the file as the request body (`Content-Type: text/csv` or `application/x-ndjson`, "
    "or `?format=`). Rows match existing customers by email (case-insensitive): a match is updated with "
    "the non-empty cells, a new email creates a customer. Bad rows are reported with their line number "
    "and skipped; valid rows are kept (committed in batches as the file streams in). `dryRun=true` "
    "validates and counts without writing. CSV: a header line of camelCase columns (the export's "
    "columns; its read-only ones are ignored), `tags` separated by `;`, `customFields` as a JSON object.",
    responses=problem_doc(413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def import_customers(
    request: Request,
    user: Importer,
    dry_run: Annotated[bool, Query(alias="dryRun", description="Validate and count; write nothing.")] = False,
    format: Annotated[
        Literal["csv", "jsonl"] | None, Query(description="Overrides the content type.")
    ] = None,
) -> ImportResult:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    fmt = format or _CONTENT_TYPES.get(content_type)
    if fmt is None:
        raise UnsupportedImportFormat(
            f"Send text/csv or application/x-ndjson (or ?format=csv|jsonl), not {content_type or 'nothing'}.",
        )
    report = await importer.run_import(
        request.app.state.runtime.db, request.stream(), fmt=fmt, dry_run=dry_run, caller=user
    )
    return report.result()


@router.get(
    "/export",
    operation_id="customers_export",
    summary="Export customers as CSV",
    description="The list's search, filters and sort; every matching customer (no paging), streamed. "
    "Merged customers are left out unless `includeMerged=true`.",
    responses={
        **problem_doc(422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV, UTF-8."},
    },
    response_class=StreamingResponse,
)
async def export_customers(
    request: Request,
    user: CustomerAccess,
    filters: ListFilter,
    sort: Annotated[str | None, Query(description="As in the list, e.g. `-createdAt`.")] = None,
    include_merged: Annotated[bool, Query(alias="includeMerged")] = False,
) -> StreamingResponse:
    sort_clauses(sort)  # a bad sort is a 422 now, not a broken stream later
    q, f = filters
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        exporter.export_csv(
            request.app.state.runtime.db, caller=user, q=q, f=f, sort=sort, include_merged=include_merged
        ),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="customers-{stamp}.csv"'},
    )


@router.get(
    "/ranking",
    operation_id="customers_ranking",
    summary="Top customers by value, per currency",
    description="The customers with the highest won (`lifetimeValue`) or open (`totalValue`) value, "
    "ranked separately in each currency they deal in (amounts in different currencies are never "
    "compared). Customers with no value in a currency are not in its ranking; merged ones never are.",
    responses=problem_doc(422),
)
async def rank_customers(
    session: SessionDep,
    user: CustomerAccess,
    measure: Annotated[ranking.Measure, Query()] = "lifetimeValue",
    limit: Annotated[int, Query(ge=1, le=100, description="Customers per currency.")] = 5,
    status: Annotated[list[CustomerStatus], any_of("Any of; all when absent.")] = [],
    currency: Annotated[list[Currency], any_of("Only these currencies; all when absent.", max_items=20)] = [],
) -> CustomerRanking:
    groups = await ranking.top_by_value(
        session,
        caller=user,
        measure=measure,
        limit=limit,
        statuses=status,
        currencies=list(dict.fromkeys(currency)),
    )
    rows = await customers.to_read(session, (c for _, items in groups for c, _ in items))
    by_id = {r.id: r for r in rows}
    return CustomerRanking(
        measure=measure,
        currencies=[
            CurrencyRanking(
                currency=code,
                items=[RankedCustomer(value=value, customer=by_id[c.id]) for c, value in items],
            )
            for code, items in groups
        ],
    )


@router.get(
    "/{customer_id}", operation_id="customers_get", summary="Get a customer", responses=problem_doc(404)
)
async def get_customer(
    customer_id: uuid.UUID, session: SessionDep, user: CustomerAccess, response: Response
) -> CustomerRead:
    customer = await customers.read_customer(session, customer_id, caller=user)
    response.headers["ETag"] = etag(customer.version)
    return customer


@router.patch(
    "/{customer_id}",
    operation_id="customers_update",
    summary="Update some fields of a customer",
    description="Only the fields sent change; `null` clears an optional field. Needs the version read "
    "(`If-Match` or `version`): 412 when the customer changed since, 428 when neither is sent.",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_customer(
    customer_id: uuid.UUID,
    body: CustomerUpdateRequest,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    customer = await customers.update_customer(
        session, customer_id=customer_id, data=body, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(customer.version)
    return await customers.to_read_one(session, customer)


@router.post(
    "/{customer_id}/convert",
    operation_id="customers_convert",
    summary="Convert a lead (or prospect) into a customer",
    description="Only a LEAD or PROSPECT converts (409 `CUSTOMER_NOT_CONVERTIBLE` otherwise). An optional "
    "opportunity draft gets its id here: the response already carries it, and pipeline-svc creates the "
    "opportunity from the `customer.converted` event with that id. `If-Match`/`version` are optional.",
    responses=problem_doc(404, 409, 412, 422),
)
async def convert_customer(
    customer_id: uuid.UUID,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    body: CustomerConvertRequest = CustomerConvertRequest(),
    if_match: IfMatch = None,
) -> ConvertResult:
    customer, draft = await actions.convert_customer(
        session, customer_id=customer_id, data=body, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(customer.version)
    return ConvertResult(
        customer=await customers.to_read_one(session, customer),
        opportunity=OpportunityDraftRead.model_validate(draft) if draft else None,
    )


@router.post(
    "/{customer_id}/assign",
    operation_id="customers_assign",
    summary="Assign a customer to a user and/or a team",
    description="The user and the team must exist and be active (422 `UNKNOWN_USER` / `UNKNOWN_TEAM`); "
    "`null` clears one. `If-Match`/`version` are optional.",
    responses=problem_doc(404, 409, 412, 422),
)
async def assign_customer(
    customer_id: uuid.UUID,
    body: CustomerAssignRequest,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    customer = await actions.assign_customer(
        session, customer_id=customer_id, data=body, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(customer.version)
    return await customers.to_read_one(session, customer)


@router.post(
    "/{customer_id}/erase",
    operation_id="customers_erase",
    status_code=202,
    summary="Erase a customer's personal data (GDPR art. 17)",
    description="Admin only; irreversible. Names, email, phones, addresses, notes, tags and custom fields "
    "are scrubbed here at once (the answer shows the record as it now is: same id, number, status and "
    "value totals); every other context scrubs what it holds about the customer (activity and ticket text, "
    "opportunity titles, webhook delivery logs, event copies) from the `customer.erased` event, hence 202. "
    "Idempotent: erasing an erased customer answers the same and publishes nothing. The duplicates merged "
    "into the customer are erased with it; a merged-away customer is erased through its survivor (409 "
    "`CUSTOMER_MERGED` names it). See docs/privacy.md.",
    responses=problem_doc(403, 404, 409),
)
async def erase_customer(
    customer_id: uuid.UUID,
    session: SessionDep,
    user: AdminAccess,
    response: Response,
) -> CustomerRead:
    customer = await erasure.erase_customer(session, customer_id=customer_id, actor_id=user.id)
    response.headers["ETag"] = etag(customer.version)
    return await customers.to_read_one(session, customer)


@router.post(
    "/{customer_id}/archive",
    operation_id="customers_archive",
    summary="Archive a customer",
    description=archive_description("lists, searches, segments, rankings and exports", "customer.purged"),
    responses=problem_doc(404, 412),
)
async def archive_customer(
    customer_id: uuid.UUID,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    customer = await archiving.set_archived(
        session, customer_id=customer_id, archived=True, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(customer.version)
    return await customers.to_read_one(session, customer)


@router.post(
    "/{customer_id}/restore",
    operation_id="customers_restore",
    summary="Restore an archived customer",
    description=RESTORE_DESCRIPTION,
    responses=problem_doc(404, 412),
)
async def restore_customer(
    customer_id: uuid.UUID,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    if_match: IfMatch = None,
) -> CustomerRead:
    customer = await archiving.set_archived(
        session, customer_id=customer_id, archived=False, if_match=if_match, caller=user
    )
    response.headers["ETag"] = etag(customer.version)
    return await customers.to_read_one(session, customer)
