"""One OpenAPI document for the whole public API: the gateway's own paths plus every service's.

The merged document is what client generators read (docs/api-guide.md, gateway/tests/test_sdk.py),
so the merge also corrects what FastAPI's output gets wrong for them; see `for_generators`.
"""

import copy
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from crm_common.errors import PROBLEM_JSON

from crm_gateway.openapi_security import declare_security
from crm_gateway.openapi_transport import describe_transport

log = logging.getLogger("crm.gateway.openapi")

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM_REF = "#/components/schemas/Problem"
FASTAPI_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
FASTAPI_SHAPES = ("HTTPValidationError", "ValidationError")


def merge(gateway_doc: dict[str, Any], service_docs: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    doc = {**gateway_doc, "paths": dict(gateway_doc.get("paths", {}))}
    components = doc.setdefault("components", {})
    tags = {t["name"]: t for t in doc.get("tags", [])}
    for service, sdoc in service_docs.items():
        for path, item in sdoc.get("paths", {}).items():
            if path in doc["paths"]:
                log.warning("path %s of %s is already served; keeping the first", path, service)
                continue
            doc["paths"][path] = item
        for kind, entries in sdoc.get("components", {}).items():
            target = components.setdefault(kind, {})
            for name, schema in entries.items():
                if name in target and target[name] != schema:
                    log.warning("component %s/%s of %s differs from one already merged", kind, name, service)
                target.setdefault(name, schema)
        for tag in sdoc.get("tags", []):
            tags.setdefault(tag["name"], tag)
    if tags:
        doc["tags"] = list(tags.values())
    doc = for_generators(doc)
    served_by_services = {path for sdoc in service_docs.values() for path in sdoc.get("paths", {})}
    describe_transport(doc, served_by_services)
    declare_security(doc)
    return doc


def for_generators(doc: dict[str, Any]) -> dict[str, Any]:
    """Describe errors as they are sent and optional bodies as optional, and name every schema apart.

    Works on a copy: the service documents FastAPI caches must stay as they are.
    """
    doc = copy.deepcopy(doc)
    components = doc.get("components", {})
    schemas = components.get("schemas", {})
    for item in doc.get("paths", {}).values():
        for method in HTTP_METHODS:
            operation = item.get(method, {})
            _optional_body(operation.get("requestBody"))
            for parameter in operation.get("parameters", []):
                _optional_parameter(parameter)
            if "Problem" in schemas:
                for response in operation.get("responses", {}).values():
                    _problem_as_sent(response)
    elsewhere = [
        doc.get("paths", {}),
        {kind: entries for kind, entries in components.items() if kind != "schemas"},
        [schema for name, schema in schemas.items() if name not in FASTAPI_SHAPES],
    ]
    if not {ref.rsplit("/", 1)[-1] for ref in _refs(elsewhere)} & set(FASTAPI_SHAPES):
        # Unused now, but generators would still emit classes for them.
        for name in FASTAPI_SHAPES:
            schemas.pop(name, None)
    _distinct_titles(schemas)
    return doc


def _optional_body(body: dict[str, Any] | None) -> None:
    # A body that may be left out (`X | None = None`) is already optional through `required: false`;
    # FastAPI also makes its schema nullable, and openapi-python-client then sends its "unset" marker
    # as the JSON body when the caller leaves the body out (a TypeError before any request is made).
    if not body or body.get("required"):
        return
    for media in body.get("content", {}).values():
        alternatives = media.get("schema", {}).get("anyOf", [])
        if len(alternatives) == 2 and {"type": "null"} in alternatives:
            media["schema"] = next(a for a in alternatives if a != {"type": "null"})


def _optional_parameter(parameter: dict[str, Any]) -> None:
    # A query parameter left out is already `required: false`; FastAPI also makes an optional one
    # nullable, which generators turn into a wrapper type (`TeamsListTypeType0` instead of an enum
    # named after the parameter). A query string cannot carry a null anyway.
    if parameter.get("required"):
        return
    schema = parameter.get("schema", {})
    alternatives = schema.get("anyOf", [])
    if len(alternatives) == 2 and {"type": "null"} in alternatives:
        kept = next(a for a in alternatives if a != {"type": "null"})
        parameter["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept}


def _problem_as_sent(response: dict[str, Any]) -> None:
    content = response.get("content")
    if not content:
        return
    ref = content.get("application/json", {}).get("schema", {}).get("$ref")
    if ref == FASTAPI_VALIDATION_REF:
        # FastAPI documents its own 422 on every operation with parameters, but the problem handler
        # (crm_common.errors) answers every validation error with a Problem.
        ref = PROBLEM_REF
    if ref != PROBLEM_REF:
        return
    # problem_doc() declares `application/problem+json` (what is sent) without a schema and FastAPI
    # puts the model under `application/json` (never sent for an error); generators pick the first
    # JSON-like media type, so they saw no schema and left every error response untyped.
    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}


def _distinct_titles(schemas: dict[str, Any]) -> None:
    # Generators name classes after the title. FastAPI splits a model whose request and response
    # schemas differ into `X-Input` and `X-Output`, both titled `X`, and the second class is then
    # dropped along with every schema that refers to it.
    by_title: dict[str, list[str]] = defaultdict(list)
    for name, schema in schemas.items():
        if isinstance(schema, dict):
            by_title[schema.get("title", name)].append(name)
    for names in by_title.values():
        if len(names) > 1:
            for name in names:
                schemas[name]["title"] = re.sub(r"[^0-9A-Za-z]", "", name)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


async def service_documents(
    sources: Mapping[str, Callable[[], Awaitable[dict[str, Any]]]],
) -> dict[str, dict[str, Any]]:
    docs = {}
    for service, fetch in sources.items():
        try:
            docs[service] = await fetch()
        except Exception as exc:
            log.warning("could not read the OpenAPI document of %s: %s", service, exc)
    return docs
