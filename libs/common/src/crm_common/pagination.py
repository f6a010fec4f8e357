"""List conventions: `?page=1&pageSize=25` (max 200), `?sort=-createdAt,fullName`,
responses `{items, total, page, pageSize}`."""

from collections.abc import Mapping
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import FieldError, ProblemError

T = TypeVar("T")
MAX_PAGE_SIZE = 200


class PageParams(BaseModel):
    page: int
    page_size: int
    sort: str | None


async def page_params(
    page: Annotated[int, Query(ge=1, description="1-based page number.")] = 1,
    page_size: Annotated[
        int, Query(alias="pageSize", ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
    ] = 25,
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
