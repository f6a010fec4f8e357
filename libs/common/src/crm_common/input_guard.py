"""What every request body is checked for beyond its schema, once for all services.

- Nesting: JSON deeper than `MAX_JSON_DEPTH` levels is refused (422) before anything walks it
  recursively; a parser that recursed into 100,000 levels answered 500 and lost the connection.
- NUL characters: refused in every string and key, and in query parameters. Postgres cannot store
  or compare them in text, and no CRM field means one.
- JSON types: pydantic's lax mode takes `1234567890` as a date-time, `0` as a boolean and `true` as a
  number (`"version": true` was version 1). A request says what it means: a date-time is a string, a
  boolean is `true`/`false`, a number is not a boolean.
"""

import datetime as dt
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AwareDatetime, FutureDate, FutureDatetime, NaiveDatetime, PastDate, PastDatetime
from pydantic_core import PydanticCustomError, PydanticKnownError
from pydantic_core.core_schema import ErrorType
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_JSON_DEPTH = 32
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NOT_BRACKET_BYTES = re.compile(rb"[^\[\]{}]+")


class JsonTooDeep(ValueError):
    def __init__(self, limit: int = MAX_JSON_DEPTH):
        super().__init__(f"JSON nested deeper than {limit} levels")


def loads(text: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` that never recurses without bound: deeper than `max_depth` is `JsonTooDeep`, bad
    JSON is `json.JSONDecodeError` (both ValueErrors, so one `except ValueError` answers both)."""
    if _bracket_depth(text) > max_depth:
        raise JsonTooDeep(max_depth)
    return json.loads(text)


def _bracket_depth(text: str | bytes) -> int:
    # Brackets inside strings count too: an over-estimate refuses only text that looks that deep, and
    # needs no parse. The regex keeps the scan in C; what is left to loop over is the brackets alone.
    if isinstance(text, bytes):
        text = _NOT_BRACKET_BYTES.sub(b"", text).decode()
    else:
        text = _NOT_BRACKET.sub("", text)
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_value(value: Any, *, max_depth: int) -> None:
    """Raise a pydantic error for a value nested deeper than `max_depth` (a scalar is 0, `[]` is 1)
    or holding a NUL character anywhere. Iterative: the depth it can walk is not the stack's."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise PydanticCustomError("string_nul", "Text must not contain NUL characters (\\u0000)")
            continue
        if isinstance(node, dict):
            children = [*node.keys(), *node.values()]
        elif isinstance(node, list | tuple):
            children = list(node)
        else:
            continue
        if depth + 1 > max_depth:
            raise PydanticCustomError(
                "json_too_deep",
                "Nested deeper than {limit} levels",
                {"limit": MAX_JSON_DEPTH},
            )
        stack.extend((child, depth + 1) for child in children)


# --- JSON types per field ---------------------------------------------------------------------------

_KINDS = (
    (bool, "bool"),
    # pydantic's constrained date-times are marker classes, not subclasses of datetime.
    (AwareDatetime | NaiveDatetime | PastDatetime | FutureDatetime, "datetime"),
    (PastDate | FutureDate, "date"),
    (dt.datetime, "datetime"),
    (dt.date, "date"),
    (dt.time, "time"),
    (Enum, None),
    (int, "number"),
    (float, "number"),
    (Decimal, "number"),
)


def field_kind(annotation: Any) -> str | None:
    """`bool`, `datetime`, `date`, `time` or `number` when every type the field takes is of that kind
    (`X | None` counts as X), else None: unions of different kinds keep pydantic's own rules."""
    kinds = {_kind(a) for a in _alternatives(annotation)}
    kinds.discard("none")
    return kinds.pop() if len(kinds) == 1 else None


def _alternatives(annotation: Any) -> Iterator[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _alternatives(get_args(annotation)[0])
    elif origin in (Union, UnionType):
        for arg in get_args(annotation):
            yield from _alternatives(arg)
    else:
        yield annotation


def _kind(annotation: Any) -> str | None:
    if annotation is type(None):
        return "none"
    if not isinstance(annotation, type):
        return None
    for base, kind in _KINDS:
        if issubclass(annotation, base):
            return kind
    return None


_TEMPORAL_ERRORS: dict[str, ErrorType] = {
    "datetime": "datetime_type",
    "date": "date_type",
    "time": "time_type",
}


def check_json_type(kind: str | None, value: Any) -> None:
    """Refuse what lax mode would coerce across JSON types: numbers as date-times, anything but a
    boolean as a boolean, a boolean as a number."""
    if kind is None or value is None:
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise PydanticKnownError("bool_type")
    elif kind in _TEMPORAL_ERRORS:
        if isinstance(value, int | float | Decimal):  # bool is an int too
            raise PydanticKnownError(_TEMPORAL_ERRORS[kind])
    elif kind == "number" and isinstance(value, bool):
        raise PydanticKnownError("int_type")


class RefuseNulInQuery:
    """ASGI middleware: a NUL character in a query parameter (`?q=a%00b`) is a 422 naming it, as in
    a body. Postgres refuses NUL in any text it is sent, so a search for one failed in the database
    (a 500) where SQLite quietly found nothing."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"%00" in scope.get("query_string", b""):
            for name, value in QueryParams(scope["query_string"]).multi_items():
                if "\x00" in name or "\x00" in value:
                    # Imported here: errors imports this module for MAX_JSON_DEPTH.
                    from crm_common.errors import FieldError, problem_response

                    response = problem_response(
                        Request(scope),
                        422,
                        "VALIDATION_ERROR",
                        "The request is not valid; see `errors`.",
                        errors=[
                            FieldError(
                                field=name.replace("\x00", "\\u0000"),
                                message="Text must not contain NUL characters (\\u0000)",
                                code="string_nul",
                            )
                        ],
                    )
                    return await response(scope, receive, send)
        await self.app(scope, receive, send)


class RefuseNullBody:
    """ASGI middleware: a JSON body that is just `null` is a 422. FastAPI reads it as "no body", so on
    an operation whose body is optional a `null` (which the document does not allow: the body is an
    object) was taken as if nothing had been sent. Only tiny bodies are looked at: `null` with
    whitespace around it fits in `_NULL_BODY_MAX` bytes, and anything longer passes untouched."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is None or not length.isdigit() or int(length) > _NULL_BODY_MAX:
            return await self.app(scope, receive, send)
        # At most _NULL_BODY_MAX bytes: read it whole (a server may send it in several messages).
        body = b""
        message: Message = {"type": "http.request", "more_body": True}
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        if message["type"] == "http.request" and body.strip() == b"null":
            from crm_common.errors import FieldError, problem_response

            response = problem_response(
                Request(scope),
                422,
                "VALIDATION_ERROR",
                "The request is not valid; see `errors`.",
                errors=[
                    FieldError(
                        field="body",
                        message="The body must be a JSON object; send no body to leave it out",
                        code="body_null",
                    )
                ],
            )
            return await response(scope, receive, send)
        whole = {"type": "http.request", "body": body, "more_body": False}
        first = whole if message["type"] == "http.request" else message
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)


_NULL_BODY_MAX = 16
