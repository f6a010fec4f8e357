"""Saved segments (a named customer filter) and their evaluation, saved or ad hoc."""

import uuid
from datetime import UTC, datetime

from crm_common.concurrency import check_optional_version, check_version
from crm_common.errors import FieldError, not_found, unique_violation
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import ScopedCaller
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.models import Customer, Segment
from customer_svc.schemas import SegmentCreateRequest, SegmentFilter, SegmentUpdateRequest
from customer_svc.service.customers import list_customers
from customer_svc.service.errors import SegmentNameExists


def _stored(f: SegmentFilter) -> dict:
    return f.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _name_taken(name: str) -> SegmentNameExists:
    return SegmentNameExists(
        f"A segment named {name!r} already exists.",
        errors=[FieldError(field="name", message="already used by another segment", code="unique")],
    )


async def _flush(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if unique_violation(exc) == "uq_segments_name_lower":
            raise _name_taken(name) from None
        raise


async def create_segment(
    session: AsyncSession, *, data: SegmentCreateRequest, actor_id: uuid.UUID
) -> Segment:
    now = datetime.now(UTC)
    segment = Segment(
        name=data.name,
        description=data.description,
        filter=_stored(data.filter),
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    session.add(segment)
    await _flush(session, data.name)
    return segment


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> Segment:
    segment = await session.get(Segment, segment_id, populate_existing=True)
    if segment is None:
        raise not_found("segment", segment_id)
    return segment


async def update_segment(
    session: AsyncSession, *, segment_id: uuid.UUID, data: SegmentUpdateRequest, if_match: str | None
) -> Segment:
    segment = await get_segment(session, segment_id)
    check_version(segment.version, if_match=if_match, body_version=data.version)
    sent = data.model_fields_set - {"version"}
    changed = False
    if "name" in sent and data.name != segment.name:
        segment.name, changed = data.name, True
    if "description" in sent and data.description != segment.description:
        segment.description, changed = data.description, True
    if "filter" in sent and _stored(data.filter) != segment.filter:
        segment.filter, changed = _stored(data.filter), True
    if changed:
        segment.updated_at = datetime.now(UTC)
        await _flush(session, segment.name)
    return segment


async def delete_segment(session: AsyncSession, *, segment_id: uuid.UUID, if_match: str | None) -> None:
    segment = await get_segment(session, segment_id)
    check_optional_version(segment.version, if_match=if_match)
    await session.delete(segment)
    await session.flush()


SEGMENT_SORTS = {
    "name": func.lower(Segment.name),
    "createdAt": Segment.created_at,
    "updatedAt": Segment.updated_at,
}


async def list_segments(
    session: AsyncSession, *, params: PageParams, q: str | None
) -> tuple[list[Segment], int]:
    query = select(Segment)
    if q:
        query = query.where(func.lower(Segment.name).contains(q.lower(), autoescape=True))
    query = query.order_by(*order_by(params.sort, SEGMENT_SORTS, [func.lower(Segment.name), Segment.id]))
    return await paginate(session, query, params)


def filter_of(segment: Segment) -> SegmentFilter:
    return SegmentFilter.model_validate(segment.filter)


async def evaluate(
    session: AsyncSession, *, caller: ScopedCaller, f: SegmentFilter, params: PageParams
) -> tuple[list[Customer], int]:
    """A page of the customers matching `f` that the caller may read, and how many. Merged customers
    never match."""
    return await list_customers(session, caller=caller, params=params, f=f, exclude_merged=True)
