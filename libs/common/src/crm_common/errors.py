"""RFC 9457 problem details, the only error shape the API speaks.

Every error carries a stable machine `code`; validation errors list the fields at fault. FastAPI's
own 422 shape and Starlette's plain-text errors never reach a client.
"""

import logging
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import SQLModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from crm_common.db import LockWaitTimeout
from crm_common.input_guard import MAX_JSON_DEPTH
from crm_common.observability import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("crm.errors")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `addresses.0.city`.")
    message: str
    code: str = Field(description="Machine code of the rule that failed, e.g. `missing`, `string_too_short`.")


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str = Field(description="Stable machine-readable error code, e.g. `CUSTOMER_EMAIL_EXISTS`.")
    errors: list[FieldError] | None = None
    requestId: str | None = None


# The members every problem document has. `extra` adds domain members beside them (a record's
# `currentStatus`, a `limit`) but never replaces one: `status` is always the HTTP status, as RFC 9457
# says and clients read it.
RESERVED_MEMBERS = frozenset(Problem.model_fields)


def _checked_extra(extra: dict[str, Any] | None) -> dict[str, Any]:
    clash = RESERVED_MEMBERS & set(extra or ())
    if clash:
        raise ValueError(
            f"problem extra members {sorted(clash)} would replace standard ones; name them apart "
            "(e.g. `currentStatus` for a record's status)"
        )
    return dict(extra or {})


class ProblemError(Exception):
    """Raise from anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers
        self.extra = _checked_extra(extra)


class DomainError(ProblemError):
    """A refusal by a domain rule, raised by a service function as a typed exception.

    Each context declares its kinds in `service/errors.py`, one subclass per refusal, with the
    `status` and `code` that api-guide.md documents as class attributes:

        class StageNotFound(DomainError):
            status, code = 404, "STAGE_NOT_FOUND"

        raise StageNotFound(f"Stage {stage_id} does not exist.")

    Service code then names what went wrong, tests and callers can catch one kind, and the HTTP
    shape is decided in one place: `install_problem_handlers` answers every ProblemError, this
    included, with its problem document (a batch item carries the same problem).
    """

    status: int = 422
    code: str = "VALIDATION_ERROR"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        cls = type(self)
        super().__init__(cls.status, cls.code, detail, errors=errors, headers=headers, extra=extra)


def not_found(what: str, ident: object) -> ProblemError:
    return ProblemError(404, f"{what.upper()}_NOT_FOUND", f"{what.capitalize()} {ident} does not exist.")


def null_errors(body: BaseModel, fields: Iterable[str]) -> list[FieldError]:
    """A PATCH body's `fields` that were sent as null, one error each (its wire name, code `null`).

    In a PATCH a field not sent is left alone and null empties a field that may be empty; for a
    field every record has (these), null is refused rather than ignored."""
    declared = type(body).model_fields
    return [
        FieldError(field=declared[name].alias or name, message="may not be null", code="null")
        for name in _sent_null(body, fields)
    ]


def refuse_nulls(body: BaseModel, fields: Iterable[str]) -> None:
    """The same refusal inside a request model, for an `@model_validator(mode="after")`: a ValueError
    naming the first of `fields` (attribute name) sent as null, which request validation answers as
    one `value_error` on the body, a batch item's on that item. Pipeline's and ticket's PATCH bodies
    refuse null this way; their answers predate `null_errors`, so they keep this wording."""
    for name in _sent_null(body, fields)[:1]:
        raise ValueError(f"{name} cannot be null")


def _sent_null(body: BaseModel, fields: Iterable[str]) -> list[str]:
    return [name for name in fields if name in body.model_fields_set and getattr(body, name) is None]


# SQLite names a violated unique index over expressions, and lists the columns of one over columns.
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?:index '(?P<index>[^']+)'|(?P<columns>.+))")


def unique_violation(exc: BaseException) -> str | None:
    """The name of the unique constraint or index a write ran into, or None for any other error:
    the one place that reads it, so code compares names (`== "uq_customers_email_lower"`) and never
    searches error text.

    Postgres: asyncpg's `UniqueViolationError.constraint_name`. SQLite gives the name only for an
    index over expressions (`lower(email)`); for one over plain columns it lists `table.column`s,
    which are looked up among the unique indexes and constraints of the tables SQLModel declares,
    else named by the convention `uq_<table>_<column>…` (what `crm_common.batch` names the externalId
    index); a primary key is `<table>_pkey`, as Postgres names it.
    """
    if not isinstance(exc, IntegrityError):
        return None
    cause = exc.orig.__cause__ if exc.orig is not None else None
    if cause is not None and type(cause).__name__ == "UniqueViolationError":
        return getattr(cause, "constraint_name", None)
    found = _SQLITE_UNIQUE.search(str(exc.orig))
    if found is None:
        return None
    if found["index"]:
        return found["index"]
    qualified = [c.strip().split(".", 1) for c in found["columns"].split(",")]
    table = qualified[0][0]
    columns = [c[-1] for c in qualified]
    if getattr(exc.orig, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_PRIMARYKEY":
        return f"{table}_pkey"
    return _declared_unique(table, columns) or "_".join(["uq", table, *columns])


def _declared_unique(table_name: str, columns: list[str]) -> str | None:
    table = SQLModel.metadata.tables.get(table_name)
    if table is None:
        return None
    for index in table.indexes:
        if index.unique and [c.name for c in index.columns] == columns and isinstance(index.name, str):
            return index.name
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and [c.name for c in constraint.columns] == columns:
            return constraint.name if isinstance(constraint.name, str) else None
    return None


def lock_wait_timed_out(exc: BaseException) -> bool:
    """Whether a write gave up waiting, at its bound, for a lock another transaction held: Postgres'
    `lock_timeout` (SQLSTATE 55P03 lock_not_available; crm_common.numbering bounds the wait for a
    year's counter row with it), SQLite's busy timeout (SQLITE_BUSY: another process held the file's
    write lock) or this process's SQLite write turn (crm_common.db.LockWaitTimeout). The statement
    failed, so its transaction rolls back: nothing was written."""
    if isinstance(exc, LockWaitTimeout):
        return True
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return False
    if getattr(exc.orig, "sqlstate", None) == "55P03":
        return True
    return str(getattr(exc.orig, "sqlite_errorname", "")).startswith("SQLITE_BUSY")


def overloaded(exc: BaseException) -> ProblemError | None:
    """The 503 OVERLOADED answer to an error that says the service is at capacity rather than at
    fault, else None: no database connection came free within the pool timeout (crm_common.db), or a
    write waited its bound for a lock (`lock_wait_timed_out`). Either way its transaction never began
    or was rolled back, so nothing was written and the client may send it again after Retry-After."""
    if not (isinstance(exc, PoolTimeout) or lock_wait_timed_out(exc)):
        return None
    return ProblemError(
        503,
        "OVERLOADED",
        "The service is at capacity; retry after the time given.",
        headers={"Retry-After": "1"},
    )


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    problem = Problem(
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=str(request.url.path) if request is not None else None,
        code=code,
        errors=errors,
        requestId=current_request_id(),
    )
    body = problem.model_dump(exclude_none=True)
    # ProblemError refuses a clashing member when raised; here the standard members win regardless.
    body.update((k, v) for k, v in (extra or {}).items() if k not in RESERVED_MEMBERS)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # Drop the "body"/"query"/... prefix FastAPI adds; keep the path a client recognises.
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[FieldError]:
    return [
        FieldError(
            field=_field_path(tuple(e.get("loc", ()))),
            message=e.get("msg", "invalid"),
            code=e.get("type", "invalid"),
        )
        for e in exc.errors()
    ]


_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            request,
            exc.status,
            exc.code,
            exc.detail,
            title=exc.title,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            request,
            422,
            "VALIDATION_ERROR",
            "The request is not valid; see `errors`.",
            errors=validation_errors(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # FastAPI's body parser recursed out of stack on a body nested thousands deep; shallower
            # ones reach the request models, which refuse more than MAX_JSON_DEPTH levels the same way.
            return problem_response(
                request,
                422,
                "VALIDATION_ERROR",
                "The request is not valid; see `errors`.",
                errors=[
                    FieldError(
                        field="body",
                        message=f"Nested deeper than {MAX_JSON_DEPTH} levels",
                        code="json_too_deep",
                    )
                ],
            )
        code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem_response(request, exc.status_code, code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # A concurrent write won the race on the version column.
        return problem_response(
            request,
            412,
            "VERSION_CONFLICT",
            "The resource changed since you read it; read it again and retry.",
        )

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(LockWaitTimeout)
    @app.exception_handler(DBAPIError)
    async def _overloaded(request: Request, exc: Exception) -> JSONResponse:
        # Overload, not a fault (see `overloaded`); any other database error goes on to the
        # unexpected-error handler below.
        problem = overloaded(exc)
        if problem is None:
            raise exc
        why = (
            "no database connection within the pool timeout" if isinstance(exc, PoolTimeout) else "lock wait"
        )
        log.warning("%s %s: 503 OVERLOADED (%s)", request.method, request.url.path, why)
        return await _problem(request, problem)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, 500, "INTERNAL_ERROR", "An unexpected error occurred.")


# Documented on operations, so generated SDKs know the error shape.
def problem_doc(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": HTTPStatus(s).phrase}
        for s in statuses
    }
