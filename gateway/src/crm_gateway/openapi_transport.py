"""What the platform around the routes adds to every operation, described in the merged document.

The routes declare their own outcomes; the layers in front of them answer too, on any operation:
the front door (429 with `RateLimit-*` and `Retry-After`, 413 for a body over the limit), admission
control (503 `OVERLOADED` with `Retry-After`), the body parser (400 for a body that is not JSON,
422 for one the models refuse) and, on the services' writes, the `Idempotency-Key` middleware (a
replay marked `Idempotent-Replayed`, 409 while the first attempt runs, 422 for a reused key).
Resources answer `ETag` with their version, creations `Location`. The services' operations take
consistency tokens (crm_common.consistency): writes answer one, any request may send them back.
"""

from http import HTTPStatus
from typing import Any

from crm_common.errors import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"
WRITES = ("post", "put", "patch", "delete")

HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests allowed per window for this credential.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window starts again.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Policy": {
        "description": "The limit and its window in seconds, e.g. `1200;w=60`.",
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "ETag": {
        "description": 'The resource\'s version as a weak entity tag, e.g. `W/"3"`; send it back in '
        "`If-Match` to update only what you read.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "Path of the created resource.", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same "
        "`Idempotency-Key` (nothing was done again).",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "CRM-Consistency-Token": {
        "description": "Names the events this write caused. Send it back on a later request (to any "
        "context) to be answered only once they are applied there.",
        "schema": {"type": "string"},
    },
    "CRM-Consistency": {
        "description": "`stale` when the request carried consistency tokens whose events were not all "
        "applied within the wait (`CRM_CONSISTENCY_WAIT_SECONDS`): the answer may not show them yet.",
        "schema": {"type": "string", "enum": ["stale"]},
    },
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retried write safe: the same key and body within 24 hours answer the first "
    "response again; the same key with another body is a 422, and a retry while the first attempt runs "
    "a 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}

CONSISTENCY_TOKEN = {
    "name": "CRM-Consistency-Token",
    "in": "header",
    "required": False,
    "description": "Tokens from earlier writes' `CRM-Consistency-Token` answers (comma-separated or the "
    "header repeated): the request is answered once this context has applied those events, or after "
    "the wait with `CRM-Consistency: stale`. A malformed token is a 400 `INVALID_CONSISTENCY_TOKEN`.",
    "schema": {"type": "string"},
}

WHY = {
    400: "The body is not parsable as its content type (e.g. malformed JSON), or a consistency "
    "token is malformed.",
    409: "Conflict (also: a retry with the same `Idempotency-Key` while the first attempt still runs).",
    413: "The body is larger than this path accepts.",
    422: "The request is not valid; `errors` lists the fields at fault.",
    429: "Too many requests for this credential; retry after `Retry-After` seconds.",
    503: "The service is at capacity (`OVERLOADED`) or unavailable; retry after `Retry-After` seconds.",
}


def describe_transport(doc: dict[str, Any], idempotent_paths: set[str]) -> None:
    """In place. `idempotent_paths`: the paths whose writes go through the idempotency middleware
    (the services'; the gateway's own routes do not take the key)."""
    if "Problem" not in doc.get("components", {}).get("schemas", {}):
        return
    components = doc.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    schemas = components.get("schemas", {})
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", *WRITES):
                continue
            responses = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            idempotent = method in WRITES and path in idempotent_paths
            service = path in idempotent_paths
            statuses = [429, 503]
            if has_body or service:
                statuses.append(400)
            if has_body:
                statuses += [413, 422]
            if service:
                _add_parameter(operation, CONSISTENCY_TOKEN)
            if idempotent:
                statuses += [409, 422]
                _add_idempotency_key(operation)
            for status in statuses:
                _problem(responses, status)
            for status, response in responses.items():
                if str(status).isdigit():
                    _headers(response, int(status), schemas, idempotent=idempotent, service=service)


def _add_idempotency_key(operation: dict[str, Any]) -> None:
    _add_parameter(operation, IDEMPOTENCY_KEY)


def _add_parameter(operation: dict[str, Any], parameter: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name", "").lower() == parameter["name"].lower() for p in parameters):
        parameters.append(dict(parameter))


def _problem(responses: dict[str, Any], status: int) -> None:
    response = responses.setdefault(
        str(status), {"description": WHY.get(status) or HTTPStatus(status).phrase}
    )
    # A status documented with another shape (the action API's 422 is its ActionResult) is still
    # answered as a problem when the layers in front of the route refuse the request.
    response.setdefault("content", {}).setdefault(PROBLEM_JSON, {"schema": {"$ref": PROBLEM_REF}})


def _headers(
    response: dict[str, Any], status: int, schemas: dict[str, Any], *, idempotent: bool, service: bool
) -> None:
    names: list[str] = []
    if status < 300 or status == 429:
        names += RATE_LIMIT_HEADERS
    if status in (429, 503):
        names.append("Retry-After")
    if 200 <= status < 300:
        if status == 201:
            names.append("Location")
        if _has_version(response, schemas):
            names.append("ETag")
        if idempotent:
            names += ["Idempotent-Replayed", "CRM-Consistency-Token"]
        if service:
            names.append("CRM-Consistency")
    if names:
        headers = response.setdefault("headers", {})
        for name in names:
            headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})


def _has_version(response: dict[str, Any], schemas: dict[str, Any]) -> bool:
    for media in response.get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        schema = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else media.get("schema", {})
        if "version" in schema.get("properties", {}):
            return True
    return False
