"""Optimistic concurrency: `ETag: W/"<version>"` on reads, `If-Match` (or a `version` in the body)
on updates, 412 when stale.

Models map their `version` column as SQLAlchemy's `version_id_col`, so the UPDATE itself carries
`WHERE version = :seen`: a write racing past the check still fails (StaleDataError -> 412).
"""

from typing import Annotated, Any

from fastapi import Header

from crm_common.errors import ProblemError

IF_MATCH_OR_VERSION = 'The ETag you read, e.g. W/"3" (or send `version`).'


def if_match_header(description: str = IF_MATCH_OR_VERSION) -> Any:
    """The optional `If-Match` request header. Routes take it as `if_match: IfMatch = None`; the
    description is an argument only because some services word it their own way in the published
    OpenAPI document, which stays as it is."""
    return Header(alias="If-Match", description=description)


IfMatch = Annotated[str | None, if_match_header()]


def etag(version: int) -> str:
    return f'W/"{version}"'


def _parse(if_match: str) -> set[int | str]:
    tags: set[int | str] = set()
    for raw in if_match.split(","):
        tag = raw.strip()
        if tag == "*":
            tags.add("*")
            continue
        tag = tag.removeprefix("W/").strip('"')
        if tag.isdigit():
            tags.add(int(tag))
    return tags


def check_version(current: int, *, if_match: str | None, body_version: int | None) -> None:
    """Refuse a write based on a stale read. One of If-Match or a body `version` is required."""
    if if_match is None and body_version is None:
        raise ProblemError(
            428,
            "PRECONDITION_REQUIRED",
            "Send the version you read: an If-Match header with the ETag, or `version` in the body.",
        )
    expected = _parse(if_match) if if_match is not None else {body_version}
    if "*" in expected or current in expected:
        return
    raise stale(current)


def check_optional_version(current: int, *, if_match: str | None, body_version: int | None = None) -> None:
    """`check_version` for writes that do not require a version (actions guarded by a state machine,
    deletes): nothing sent passes; a version sent that is stale is still a 412."""
    if if_match is not None or body_version is not None:
        check_version(current, if_match=if_match, body_version=body_version)


def stale(current: int | None = None) -> ProblemError:
    return ProblemError(
        412,
        "VERSION_CONFLICT",
        "The resource changed since you read it; read it again and retry.",
        extra={"currentVersion": current} if current is not None else None,
    )
