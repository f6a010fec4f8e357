"""List conventions: `?page=1&pageSize=25` (max 200), `?sort=-createdAt,fullName`,
responses `{items, total, page, pageSize}`.

Every number and every repeated filter a client sends is bounded here, in the declared parameter, so
an out-of-range value is a 422 naming it (and the OpenAPI document says so): an unbounded page became
an OFFSET the database cannot hold, and eleven copies of a filter value broke a model behind the
parameter after validation, both answered 500.
"""

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

from annotated_types import MaxLen
from fastapi import FastAPI, Query
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import FieldError, ProblemError
from crm_common.routes import api_routes

T = TypeVar("T")
MAX_PAGE_SIZE = 200
# 200 million rows in at most 200 per page: deeper than any list here, far below a 64-bit OFFSET.
MAX_PAGE = 1_000_000
# Values of one repeated filter (`?status=OPEN&status=WON`): enough for every value of an enum.
MAX_FILTER_VALUES = 10
# Ids or free values of one repeated filter (`?teamId=...`), the bound segments and bulk filters use.
MAX_FILTER_IDS = 200

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


class PageParams(BaseModel):
    page: int
    page_size: int
    sort: str | None


async def page_params(
    page: PageNumber = 1,
    page_size: PageSize = 25,
    sort: Annotated[
        str | None,
        Query(description="Comma-separated fields; a leading `-` sorts descending, e.g. `-createdAt`."),
    ] = None,
) -> PageParams:
    return PageParams(page=page, page_size=page_size, sort=sort)


class Page(BaseModel, Generic[T]):
    model_config = ConfigDict(populate_by_name=True)

    items: list[T]
    total: int
    page: int
    page_size: int = Field(alias="pageSize")


def order_by(sort: str | None, columns: Mapping[str, ColumnElement], default: list[ColumnElement]) -> list:
    """Translate `?sort=` into ORDER BY clauses; unknown fields are a 422 naming the allowed ones."""
    if not sort:
        return default
    clauses = []
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


async def paginate(session: AsyncSession, query: Select, params: PageParams) -> tuple[list, int]:
    """Rows of one page and the total count of the unpaged query."""
    total = (
        await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    ).scalar_one()
    rows = (
        (await session.execute(query.limit(params.page_size).offset((params.page - 1) * params.page_size)))
        .scalars()
        .all()
    )
    return list(rows), total


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
    found = []
    for served, route in api_routes(app):
        for field in _query_params(route.dependant):
            info = field.field_info
            if _is_sequence(info.annotation) and not any(isinstance(m, MaxLen) for m in info.metadata):
                found.append(f"{','.join(sorted(served.methods))} {served.path}: {field.alias}")
    return found


def _query_params(dependant: Dependant):
    yield from dependant.query_params
    for sub in dependant.dependencies:
        yield from _query_params(sub)


def _is_sequence(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, UnionType):
        return any(_is_sequence(a) for a in get_args(annotation))
    return get_origin(annotation) in (list, set, tuple, frozenset)
