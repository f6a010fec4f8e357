"""Optimistic concurrency: `ETag: W/"<version>"` on reads, `If-Match` (or a `version` in the body)
on updates, 412 when stale.

Models map their `version` column as SQLAlchemy's `version_id_col`, so the UPDATE itself carries
`WHERE version = :seen`: a write racing past the check still fails (StaleDataError -> 412).
"""

from crm_common.errors import ProblemError


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


def stale(current: int | None = None) -> ProblemError:
    return ProblemError(
        412,
        "VERSION_CONFLICT",
        "The resource changed since you read it; read it again and retry.",
        extra={"currentVersion": current} if current is not None else None,
    )
