"""Batch endpoints (`POST /<resource>/batch/create|update|upsert|read`) and the `externalId` they upsert by.

One request carries up to `MAX_BATCH` items and is answered `200` with one result per item, in order:
the status the item would have had on its own (`201` created, `200` updated or read, `404`, `409`,
`412`, `422`...), the record's id and the record, or a problem. Partial success is explicit: `failed`
counts the items that were refused, and each refused item changed nothing (a savepoint per item).
A body that does not validate as a whole (an item missing a required field, more than `MAX_BATCH`
items) is a 422 and nothing is written. The whole answer is one transaction, so it goes through the
`Idempotency-Key` middleware like any write: a retry with the same key replays it.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from alembic import op
from pydantic import Field, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.errors import FieldError, Problem, ProblemError, unique_violation
from crm_common.schemas import ApiModel, StrictApiModel

MAX_BATCH = 100

ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, strip_whitespace=True),
    Field(description="Your system's id for the record: unique per resource, the key of `batch/upsert`."),
]

T = TypeVar("T")
R = TypeVar("R")

BatchItems = Annotated[list[T], Field(min_length=1, max_length=MAX_BATCH)]


class BatchInput(StrictApiModel, Generic[T]):
    items: BatchItems[T] = Field(description=f"1 to {MAX_BATCH} items, answered in the same order.")


class BatchReadRequest(StrictApiModel):
    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_BATCH)]


class BatchItemResult(ApiModel, Generic[R]):
    index: int = Field(description="Position of the item in the request.")
    status: int = Field(
        description="The status this item would have had on its own: 201, 200, 404, 409, 412, 422."
    )
    id: uuid.UUID | None = Field(None, description="The record created, updated or read.")
    data: R | None = None
    problem: Problem | None = Field(None, description="Why the item was refused (it changed nothing).")


class BatchResult(ApiModel, Generic[R]):
    results: list[BatchItemResult[R]]
    succeeded: int
    failed: int


# --- running a batch ------------------------------------------------------------------------------

Handler = Callable[[AsyncSession, Any], Awaitable[tuple[int, Any]]]


async def run_batch(
    session: AsyncSession,
    items: Sequence[Any],
    handle: Handler,
    present: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]],
) -> BatchResult[Any]:
    """`handle(session, item)` each item inside its own savepoint; it answers (status, record) or
    raises a ProblemError, which undoes that item alone. `present` turns the records into what the
    API answers for them, all at once at the end."""
    outcomes: list[tuple[int, Any, Problem | None]] = []
    for item in items:
        try:
            async with session.begin_nested():
                status, record = await handle(session, item)
        except ProblemError as exc:
            outcomes.append((exc.status, None, _problem(exc)))
        else:
            outcomes.append((status, record, None))
    shown = iter(await present([record for _, record, problem in outcomes if problem is None]))
    results: list[BatchItemResult[Any]] = []
    for index, (status, record, problem) in enumerate(outcomes):
        if problem is not None:
            results.append(BatchItemResult(index=index, status=status, problem=problem))
        else:
            data = next(shown)
            results.append(BatchItemResult(index=index, status=status, id=record.id, data=data))
    failed = sum(1 for _, _, problem in outcomes if problem is not None)
    return BatchResult(results=results, succeeded=len(outcomes) - failed, failed=failed)


def _problem(exc: ProblemError) -> Problem:
    return Problem(title=exc.title, status=exc.status, detail=exc.detail, code=exc.code, errors=exc.errors)


def external_id_exists(resource: str, external_id: str) -> ProblemError:
    return ProblemError(
        409,
        f"{resource.upper()}_EXTERNAL_ID_EXISTS",
        f"A {resource} with the externalId {external_id} already exists.",
        errors=[FieldError(field="externalId", message=f"already used by another {resource}", code="unique")],
    )


async def check_external_id_free(
    session: AsyncSession,
    model: Any,
    resource: str,
    external_id: str | None,
    *,
    other_than: uuid.UUID | None = None,
) -> None:
    """A friendly 409 before writing a taken externalId (the unique index settles races:
    `external_id_conflict`)."""
    if external_id is None:
        return
    query = sa.select(model.id).where(model.external_id == external_id)
    if other_than is not None:
        query = query.where(model.id != other_than)
    if (await session.execute(query.limit(1))).first() is not None:
        raise external_id_exists(resource, external_id)


def external_id_conflict(
    exc: IntegrityError, table: str, resource: str, external_id: str | None
) -> ProblemError | None:
    """The 409 for a write that ran into the unique externalId index; None for another violation."""
    if unique_violation(exc) == f"uq_{table}_external_id":
        return external_id_exists(resource, external_id or "")
    return None


async def find_by_external_id(session: AsyncSession, model: Any, external_id: str | None) -> uuid.UUID | None:
    if external_id is None:
        raise missing_key("externalId")
    return (
        await session.execute(sa.select(model.id).where(model.external_id == external_id))
    ).scalar_one_or_none()


def missing_key(field: str) -> ProblemError:
    return ProblemError(
        422,
        "VALIDATION_ERROR",
        f"An upsert by {field} needs `{field}` in every item.",
        errors=[FieldError(field=field, message="required to upsert by it", code="missing")],
    )


# --- migration -----------------------------------------------------------------------------------


def add_external_id_v1(table: str, *, live_only: bool = False) -> None:
    """For a service's migration: the nullable `external_id` column and its unique index (on live
    rows only when `live_only`: a customer merged into another no longer holds its external id)."""
    with op.batch_alter_table(table) as batch_op:
        batch_op.add_column(sa.Column("external_id", sa.String(255)))
    where = sa.text("merged_into_id IS NULL") if live_only else None
    op.create_index(
        f"uq_{table}_external_id",
        table,
        ["external_id"],
        unique=True,
        postgresql_where=where,
        sqlite_where=where,
    )


def drop_external_id_v1(table: str) -> None:
    op.drop_index(f"uq_{table}_external_id", table_name=table)
    # A plain DROP COLUMN (SQLite 3.35+), not batch mode: batch recreates the table on SQLite, which
    # silently drops the triggers on it (the pipeline's stage totals are kept by triggers).
    op.drop_column(table, "external_id")


def external_id_index(table: str, *, live_only: bool = False) -> sa.Index:
    """The same index for the model's `__table_args__`."""
    where = sa.text("merged_into_id IS NULL") if live_only else None
    return sa.Index(
        f"uq_{table}_external_id", "external_id", unique=True, postgresql_where=where, sqlite_where=where
    )
