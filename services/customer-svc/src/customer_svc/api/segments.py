"""HTTP routes of saved segments (`/api/v1/segments`); the ad hoc preview sits under customers."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import IfMatch, etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query, Response

from customer_svc.api.deps import CustomerAccess
from customer_svc.schemas import (
    CustomerPage,
    SegmentCreateRequest,
    SegmentPage,
    SegmentRead,
    SegmentUpdateRequest,
)
from customer_svc.service import customers, segments

router = APIRouter(prefix="/api/v1/segments", tags=["segments"], responses=problem_doc(401, 403))
Paging = Annotated[PageParams, Depends(page_params)]


@router.post(
    "",
    status_code=201,
    operation_id="segments_create",
    summary="Save a customer segment",
    responses=problem_doc(409, 422),
)
async def create_segment(
    body: SegmentCreateRequest, session: SessionDep, user: CustomerAccess, response: Response
) -> SegmentRead:
    segment = await segments.create_segment(session, data=body, actor_id=user.id)
    response.headers["Location"] = f"/api/v1/segments/{segment.id}"
    response.headers["ETag"] = etag(segment.version)
    return SegmentRead.model_validate(segment)


@router.get("", operation_id="segments_list", summary="List saved segments", responses=problem_doc(422))
async def list_segments(
    session: SessionDep,
    user: CustomerAccess,
    params: Paging,
    q: Annotated[str | None, Query(max_length=200, description="Substring of the name.")] = None,
) -> SegmentPage:
    items, total = await segments.list_segments(session, params=params, q=q)
    return SegmentPage(
        items=[SegmentRead.model_validate(s) for s in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )


@router.get(
    "/{segment_id}", operation_id="segments_get", summary="Get a saved segment", responses=problem_doc(404)
)
async def get_segment(
    segment_id: uuid.UUID, session: SessionDep, user: CustomerAccess, response: Response
) -> SegmentRead:
    segment = await segments.get_segment(session, segment_id)
    response.headers["ETag"] = etag(segment.version)
    return SegmentRead.model_validate(segment)


@router.patch(
    "/{segment_id}",
    operation_id="segments_update",
    summary="Rename a segment or change its filter",
    description="`filter`, when sent, replaces the whole filter. Needs `If-Match` or `version`.",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_segment(
    segment_id: uuid.UUID,
    body: SegmentUpdateRequest,
    session: SessionDep,
    user: CustomerAccess,
    response: Response,
    if_match: IfMatch = None,
) -> SegmentRead:
    segment = await segments.update_segment(session, segment_id=segment_id, data=body, if_match=if_match)
    response.headers["ETag"] = etag(segment.version)
    return SegmentRead.model_validate(segment)


@router.delete(
    "/{segment_id}",
    status_code=204,
    operation_id="segments_delete",
    summary="Delete a saved segment",
    description="`If-Match` is optional; when sent, a stale one is a 412.",
    responses=problem_doc(404, 412),
)
async def delete_segment(
    segment_id: uuid.UUID, session: SessionDep, user: CustomerAccess, if_match: IfMatch = None
) -> Response:
    await segments.delete_segment(session, segment_id=segment_id, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{segment_id}/customers",
    operation_id="segments_customers",
    summary="Evaluate a saved segment: a page of its customers and their count",
    description="Evaluated on demand (never cached); merged customers never match. Sorts as the customer list.",
    responses=problem_doc(404, 422),
)
async def segment_customers(
    segment_id: uuid.UUID, session: SessionDep, user: CustomerAccess, params: Paging
) -> CustomerPage:
    segment = await segments.get_segment(session, segment_id)
    items, total = await segments.evaluate(session, caller=user, f=segments.filter_of(segment), params=params)
    return CustomerPage(
        items=await customers.to_read(session, items),
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )
