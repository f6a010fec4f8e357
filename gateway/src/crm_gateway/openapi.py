"""One OpenAPI document for the whole public API: the gateway's own paths plus every service's."""

import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger("crm.gateway.openapi")


def merge(gateway_doc: dict, service_docs: Mapping[str, dict]) -> dict:
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
    return doc


async def service_documents(sources: Mapping[str, Callable[[], Awaitable[dict]]]) -> dict[str, dict]:
    docs = {}
    for service, fetch in sources.items():
        try:
            docs[service] = await fetch()
        except Exception as exc:
            log.warning("could not read the OpenAPI document of %s: %s", service, exc)
    return docs
