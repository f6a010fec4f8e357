"""List conventions: `?page=1&pageSize=25` (max 200), `?sort=-createdAt,fullName`,
responses `{items, total, page, pageSize}`.

Lists of records also take the incremental-sync parameters (`sync_page_params`): `updatedAfter` and
`createdAfter` (RFC 3339) filters, and a cursor mode (`?cursor=`, empty to start) that pages in sync
order, keyset on (updated_at, id), answering `next`. See docs/sync.md.

Every number and every repeated filter a client sends is bounded here, in the declared parameter, so
an out-of-range value is a 422 naming it (and the OpenAPI document says so): an unbounded page became
an OFFSET the database cannot hold, and eleven copies of a filter value broke a model behind the
parameter after validation, both answered 500.
"""

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from types import UnionType
from typing import Annotated, Any, Generic, Self, TypeVar, Union, get_args, get_origin

from annotated_types import MaxLen
from fastapi import FastAPI, Query

# The type of a route's declared parameters (FastAPI's own name for it, not re-exported elsewhere).
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from crm_common.db import dialect_name
from crm_common.errors import FieldError, ProblemError
from crm_common.models import utcnow
from crm_common.routes import api_routes
from crm_common.sql_types import AnyRow, AnySelect

T = TypeVar("T")
R = TypeVar("R")  # a result row of a page, as the caller reads it
MAX_PAGE_SIZE = 200
# 200 million rows in at most 200 per page: deeper than any list here, far below a 64-bit OFFSET.
MAX_PAGE = 1_000_000
# Values of one repeated filter (`?status=OPEN&status=WON`): enough for every value of an enum.
MAX_FILTER_VALUES = 10
# Ids or free values of one repeated filter (`?teamId=...`), the bound segments and bulk filters use.
MAX_FILTER_IDS = 200
# How far a search's total counts: past it the page says "at least this many" (`totalExact: false`).
# Counting every match made a search as slow as its matches were many (0.15 s at 111k of 200k
# customers, 15 ms counting to 10,000); to this limit it reads about 1.5 ms of rows, and a page in
# an indexed order only its own (bench/README.md).
SEARCH_COUNT_LIMIT = 1_000

PageNumber = Annotated[int, Query(ge=1, le=MAX_PAGE, description="1-based page number.")]
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]


def any_of(
    description: str = "Any of.",
    *,
    alias: str | None = None,
    max_items: int = MAX_FILTER_VALUES,
    **extra: Any,
) -> Any:
    """A repeatable query filter (`?status=A&status=B`) with its number of values bounded: more is a
    422 naming the parameter. Every list-valued query parameter goes through here (see
    `unbounded_list_queries`, which the apps check at start)."""
    return Query(alias=alias, max_length=max_items, description=description, **extra)


class SyncPosition(BaseModel):
    """Where a cursor stands in sync order: after the row with this (updated_at, id)."""

    updated_at: datetime
    id: uuid.UUID


class PageParams(BaseModel):
    page: int
    page_size: int
    sort: str | None
    updated_after: datetime | None = None
    created_after: datetime | None = None
    # Cursor mode: asked for with `?cursor=` (empty for the start); `after` is the decoded position.
    cursor_mode: bool = False
    after: SyncPosition | None = None
    # Filled by `paginate` in cursor mode: the cursor of the following page, None at the end.
    next: str | None = None


async def page_params(
    page: PageNumber = 1,
    page_size: PageSize = 25,
    sort: Annotated[
        str | None,
        Query(description="Comma-separated fields; a leading `-` sorts descending, e.g. `-createdAt`."),
    ] = None,
) -> PageParams:
    return PageParams(page=page, page_size=page_size, sort=sort)


# RFC 3339 date-time with an offset (`Z` or `+hh:mm`): no dates alone, no epoch numbers, no naive times.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _invalid_query(name: str, message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": kind}])


def parse_rfc3339(value: str | None, name: str) -> datetime | None:
    """A query parameter holding an RFC 3339 timestamp; anything else is a 422 naming it."""
    if value is None:
        return None
    text_value = value.strip()
    if not _RFC3339.match(text_value):
        raise _invalid_query(
            name, "expected an RFC 3339 date-time with offset, e.g. 2026-01-31T12:00:00Z", "datetime"
        )
    # fromisoformat takes at most microseconds: cut nanosecond digits before parsing.
    text_value = re.sub(r"(\.\d{6})\d+", r"\1", text_value.replace("z", "Z").replace("t", "T"))
    try:
        return datetime.fromisoformat(text_value)
    except ValueError:
        raise _invalid_query(name, "not a valid date-time", "datetime") from None


def encode_cursor(updated_at: datetime, ident: uuid.UUID) -> str:
    raw = json.dumps({"u": updated_at.isoformat(), "i": str(ident)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SyncPosition | None:
    """The position an opaque cursor names; empty is the start. A cursor we did not issue is a 422."""
    if not cursor.strip():
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor.strip() + "=" * (-len(cursor.strip()) % 4))
        data = json.loads(raw)
        return SyncPosition(updated_at=datetime.fromisoformat(data["u"]), id=uuid.UUID(data["i"]))
    except (binascii.Error, ValueError, KeyError, TypeError, ValidationError):
        raise _invalid_query(
            "cursor", "not a cursor this list issued (use `next` as given)", "cursor"
        ) from None


async def sync_page_params(
    page: PageNumber = 1,
    page_size: PageSize = 25,
    sort: Annotated[
        str | None,
        Query(description="Comma-separated fields; a leading `-` sorts descending, e.g. `-createdAt`."),
    ] = None,
    updated_after: Annotated[
        str | None,
        Query(
            alias="updatedAfter",
            max_length=40,
            description="Only records changed after this RFC 3339 time (exclusive), e.g. `2026-01-31T12:00:00Z`.",
        ),
    ] = None,
    created_after: Annotated[
        str | None,
        Query(
            alias="createdAfter", max_length=40, description="Only records created after this RFC 3339 time."
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Cursor mode: empty to start, then the `next` of the previous page. Pages in sync "
            "order (oldest change first, keyset on updatedAt and id), stable under concurrent writes; "
            "`sort` and `page` do not apply. Send the same filters with every page.",
        ),
    ] = None,
) -> PageParams:
    if cursor is not None and sort:
        raise _invalid_query("sort", "cursor mode pages in sync order; drop `sort`", "cursor_sort")
    return PageParams(
        page=1 if cursor is not None else page,
        page_size=page_size,
        sort=sort,
        updated_after=parse_rfc3339(updated_after, "updatedAfter"),
        created_after=parse_rfc3339(created_after, "createdAfter"),
        cursor_mode=cursor is not None,
        after=decode_cursor(cursor) if cursor is not None else None,
    )


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(populate_by_name=True)

    items: list[T]
    total: int = Field(
        description="Matching records; in cursor mode, those from this page on. A lower bound when "
        "`totalExact` is false."
    )
    total_exact: bool = Field(
        True,
        alias="totalExact",
        description=f"Absent (true) when `total` is exact. False when a search matched more records "
        f"than its count goes to ({SEARCH_COUNT_LIMIT:,}): at least `total` match.",
        # Like `next`: a list whose total is exact keeps the shape it always had.
        exclude_if=lambda value: value,
    )
    page: int
    page_size: int = Field(alias="pageSize")
    next: str | None = Field(
        None,
        description="Cursor mode only: the cursor of the following page; absent on the last page "
        "(resume later with `updatedAfter` set to the last item's `updatedAt` and an empty `cursor`).",
        # Page/pageSize clients keep the exact shape they had: `next` only appears when there is one.
        # (Not a model serializer: its return annotation would replace the documented response schema.)
        exclude_if=lambda value: value is None,
    )

    @classmethod
    def of(cls, items: list[Any], total: int, params: PageParams, *, exact: bool = True) -> Self:
        """The page a list route answers: `items` and `total` as the query found them (`exact`:
        whether the count reached its end), the page, its size and (cursor mode) the next cursor
        from `params` (`paginate` sets `next`)."""
        return cls(
            items=items,
            total=total,
            total_exact=exact,
            page=params.page,
            page_size=params.page_size,
            next=params.next,
        )


def order_by(
    sort: str | None, columns: Mapping[str, ColumnElement[Any]], default: list[ColumnElement[Any]]
) -> list[ColumnElement[Any]]:
    """Translate `?sort=` into ORDER BY clauses; unknown fields are a 422 naming the allowed ones."""
    if not sort:
        return default
    clauses: list[ColumnElement[Any]] = []
    for part in (p.strip() for p in sort.split(",")):
        if not part:
            continue
        name = part.lstrip("-+")
        column = columns.get(name)
        if column is None:
            raise ProblemError(
                422,
                "INVALID_SORT",
                f"Cannot sort by `{name}`; allowed: {', '.join(sorted(columns))}.",
                errors=[FieldError(field="sort", message=f"unknown sort field {name}", code="invalid_sort")],
            )
        clauses.append(column.desc() if part.startswith("-") else column.asc())
    return clauses + default


def sync_columns(
    entity: Any,
) -> tuple[QueryableAttribute[datetime], QueryableAttribute[datetime], QueryableAttribute[uuid.UUID]]:
    """(changed, created, id) columns of a record type: `updated_at`, else `created_at` for records
    never changed after they are written; `created_at`, else `added_at` (campaign members)."""
    created = getattr(entity, "created_at", None) or entity.added_at
    changed = getattr(entity, "updated_at", None) or created
    return changed, created, entity.id


def _entity(query: AnySelect) -> Any:
    return query.column_descriptions[0]["entity"]


# Postgres: how long a change may take between getting its timestamp and the start of its transaction
# being visible. Cursor pages stop this much short of the newest changes and of the oldest open
# transaction, so one that commits late with an earlier updated_at is never behind a cursor that
# already passed its position.
SYNC_SETTLE = timedelta(seconds=1)


async def sync_frontier(session: AsyncSession) -> datetime | None:
    """The latest change time a cursor page may reach, None for no bound.

    SQLite: none needed. Writers take turns (the process's writer lock, then BEGIN IMMEDIATE) and
    take their timestamps in their turn, so every row a reader can see is older than any change
    still to commit. Postgres: writers run concurrently and commit in any order, so a page stops
    before the start of this service's oldest open transaction and a little short of now."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    frontier = utcnow() - SYNC_SETTLE
    oldest = (
        await session.execute(
            text(
                # This service's own connections (the engine names them `crm-<schema>`): the only
                # writers of its tables.
                "SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = current_setting('application_name') "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
        )
    ).scalar_one()
    if oldest is not None:
        frontier = min(frontier, oldest - SYNC_SETTLE)
    return frontier


def sync_filters(query: AnySelect, params: PageParams, entity: Any = None) -> AnySelect:
    """`updatedAfter` / `createdAfter` on a record query."""
    changed, created, _ = sync_columns(entity if entity is not None else _entity(query))
    if params.updated_after is not None:
        query = query.where(changed > params.updated_after)
    if params.created_after is not None:
        query = query.where(created > params.created_after)
    return query


def sync_order(entity: Any) -> list[ColumnElement[Any]]:
    changed, _, ident = sync_columns(entity)
    return [changed.asc(), ident.asc()]


_FRONTIER_OF_NOW = object()


async def cursor_window(
    session: AsyncSession,
    query: AnySelect,
    params: PageParams,
    entity: Any = None,
    *,
    frontier: Any = _FRONTIER_OF_NOW,
) -> AnySelect:
    """A record query in cursor mode: after the cursor's position, up to the frontier (`sync_frontier`
    unless given), in sync order."""
    entity = entity if entity is not None else _entity(query)
    changed, _, ident = sync_columns(entity)
    if frontier is _FRONTIER_OF_NOW:
        frontier = await sync_frontier(session)
    if frontier is not None:
        query = query.where(changed <= frontier)
    if params.after is not None:
        at = params.after
        query = query.where(or_(changed > at.updated_at, and_(changed == at.updated_at, ident > at.id)))
    return query.order_by(None).order_by(*sync_order(entity))


def next_cursor(
    rows: list[R], params: PageParams, entity: Any, record: Callable[[R], Any] = lambda r: r
) -> list[R]:
    """Cut the look-ahead row of a cursor page (fetched with `page_size + 1`) and set `params.next`
    when there is a following page. `record` picks the record out of a result row."""
    if len(rows) <= params.page_size:
        params.next = None
        return rows
    rows = rows[: params.page_size]
    last = record(rows[-1])
    changed, _, _ = sync_columns(entity)
    params.next = encode_cursor(getattr(last, changed.key), last.id)
    return rows


async def paginate(session: AsyncSession, query: AnySelect, params: PageParams) -> tuple[list[Any], int]:
    """Rows of one page and the total count of the unpaged query. With the sync parameters
    (`sync_page_params`), filtered by `updatedAfter`/`createdAfter`; in cursor mode, the page after
    the cursor in sync order, `params.next` set for the following one."""
    if params.updated_after is not None or params.created_after is not None:
        query = sync_filters(query, params)
    if params.cursor_mode:
        entity = _entity(query)
        query = await cursor_window(session, query, params, entity)
        total = (
            await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
        ).scalar_one()
        rows = list((await session.execute(query.limit(params.page_size + 1))).scalars().all())
        return next_cursor(rows, params, entity), total
    total = (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()
    found = await session.execute(query.limit(params.page_size).offset((params.page - 1) * params.page_size))
    return list(found.scalars().all()), total


# The label of the total `paginate_rows` adds to a page's rows.
PAGE_TOTAL = "page_total_"


async def paginate_rows(
    session: AsyncSession,
    query: AnySelect,
    params: PageParams,
    entity: Any,
    rows_of: Callable[[Subquery], AnySelect],
    *,
    count_limit: int | None = None,
) -> tuple[list[AnyRow], int, bool]:
    """`paginate` for a page read as Core rows: `query` finds and orders the records (`entity`),
    `rows_of(page)` selects what a row holds for the records of `page` (a subquery of their `id`s,
    to join on). Answers the rows, the total and whether it is exact.

    Without `count_limit`, in one statement, one scan of the matches instead of two: `count(*)
    OVER ()` is computed over every record the query matches, before LIMIT and OFFSET, so it is the
    count `paginate` reads separately; each row carries it as `PAGE_TOTAL`. The window runs over
    the ids alone (with the whole rows it spilled to disk at 100k matches); the rows are then read
    by primary key and put in the query's order again, which must be total (the sorts here all end
    with the id). A page past the last has no row to carry the total: only then is it read on its
    own.

    With `count_limit` (searches, `SEARCH_COUNT_LIMIT`), on Postgres no window, which needs every
    match: the page's ids are found on their own, which an index in the query's order does by
    reading little more than the page, and the total is a count that stops after the limit, in
    the same statement. Past the limit the total is a lower bound (exact False), in both run
    modes."""
    if params.updated_after is not None or params.created_after is not None:
        query = sync_filters(query, params, entity)
    if params.cursor_mode:
        query = await cursor_window(session, query, params, entity)
        limit, offset = params.page_size + 1, 0
    else:
        limit, offset = params.page_size, (params.page - 1) * params.page_size
    _, _, ident = sync_columns(entity)
    # The query's own ORDER BY (SQLAlchemy has no public accessor for it).
    order = query._order_by_clauses
    count_alone: AnySelect
    if count_limit is not None and dialect_name(session) != "sqlite":
        # One statement still: the page's ids, and the count as a scalar subquery (run once).
        matches = query.order_by(None).with_only_columns(ident).limit(count_limit + 1).subquery("matches")
        counted = select(func.count()).select_from(matches).scalar_subquery()
        page = query.with_only_columns(ident.label("id")).limit(limit).offset(offset).subquery("page")
        statement = rows_of(page).add_columns(counted.label(PAGE_TOTAL)).order_by(*order)
        count_alone = select(counted)
    else:
        # SQLite keeps the window, also for a search: its trigram index (where FTS5 has one) leaves
        # few rows to count, and without it every row is read whatever the plan, and walking the
        # list's order read the whole table in index order, slower than a scan, whenever a term
        # matched fewer rows than a page.
        page = (
            query.with_only_columns(ident.label("id"), func.count().over().label(PAGE_TOTAL))
            .limit(limit)
            .offset(offset)
            .subquery("page")
        )
        statement = rows_of(page).add_columns(page.c[PAGE_TOTAL]).order_by(*order)
        count_alone = select(func.count()).select_from(query.order_by(None).subquery())
    rows = list((await session.execute(statement)).all())
    if rows:
        total = rows[0]._mapping[PAGE_TOTAL]
    elif offset == 0:
        total = 0
    else:
        total = (await session.execute(count_alone)).scalar_one()
    exact = True
    if count_limit is not None and total > count_limit:
        if 0 < len(rows) < limit:
            total = offset + len(rows)  # the last page: where it ends is the total
        else:
            # More than the limit match, as far as it counts (SQLite counted further; both run
            # modes answer alike): at least the limit, and every row up to this page's end (a
            # cursor page's look-ahead row is not on it).
            page_end = offset + min(len(rows), params.page_size) if rows else 0
            total, exact = max(count_limit, page_end), False
    if params.cursor_mode:
        rows = next_cursor(rows, params, entity)
    return rows, total, exact


M = TypeVar("M", bound=BaseModel)


def query_model(model: type[M], **values: Any) -> M:
    """Build a model from query parameters; its validation errors are the client's 422 (on the query
    parameters they name), not a 500 from inside a dependency."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def unbounded_list_queries(app: FastAPI) -> list[str]:
    """`METHOD path: parameter` for each repeatable query parameter without a bound on its values
    (declare it with `any_of`)."""
    found: list[str] = []
    for served, route in api_routes(app):
        for field in _query_params(route.dependant):
            info = field.field_info
            if _is_sequence(info.annotation) and not any(isinstance(m, MaxLen) for m in info.metadata):
                found.append(f"{','.join(sorted(served.methods))} {served.path}: {field.alias}")
    return found


def _query_params(dependant: Dependant) -> Iterator[ModelField]:
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)


def _is_sequence(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_sequence(a) for a in get_args(annotation))
    return get_origin(annotation) in (list, set, tuple, frozenset)
