"""Which service answers which path, and the ASGI dispatcher that sends a request there.

An upstream is either a service app in this process (embedded default: a direct ASGI call, no
network hop) or a remote service reached over HTTP (distributed mode). Callers cannot tell.
"""

import re
from collections.abc import Mapping

from crm_common.errors import problem_response
from crm_common.observability import current_request_id
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

# Longest prefix wins; a prefix matches itself and anything below it.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/api/v1/customers", "customer"),
    ("/api/v1/segments", "customer"),
    ("/api/v1/opportunities", "pipeline"),
    ("/api/v1/stages", "pipeline"),
    ("/api/v1/products", "pipeline"),
    ("/api/v1/invoices", "pipeline"),
    ("/api/v1/pipeline", "pipeline"),
    ("/api/v1/activities", "activity"),
    ("/api/v1/tickets", "ticket"),
    ("/api/v1/sla-policies", "ticket"),
    ("/api/v1/campaigns", "campaign"),
    ("/api/v1/webhooks", "webhook"),
)
_ORDERED = sorted(ROUTES, key=lambda r: len(r[0]), reverse=True)

# Timelines live in activity-svc though their paths sit under other resources.
_TIMELINE = re.compile(r"^/api/v1/(customers|opportunities|tickets)/[^/]+/timeline$")
# Dead letters and outboxes are each service's own (crm_common.events.admin_api); the gateway's own
# (`.../events/gateway/...`) and unknown names stay with the gateway.
_EVENT_ADMIN = re.compile(r"^/api/v1/admin/events/([a-z]+)(/|$)")
_SERVICES = frozenset(service for _, service in ROUTES)
# The gateway's own compositions under a service's prefix: a person's data from every context.
_GATEWAY_OWN = re.compile(r"^/api/v1/customers/[^/]+/personal-data$")


def service_for(path: str) -> str | None:
    if _GATEWAY_OWN.match(path):
        return None
    if _TIMELINE.match(path):
        return "activity"
    if (match := _EVENT_ADMIN.match(path)) and match[1] in _SERVICES:
        return match[1]
    for prefix, service in _ORDERED:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


class Dispatcher:
    def __init__(self, upstreams: Mapping[str, ASGIApp]) -> None:
        self.upstreams = upstreams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        service = service_for(scope["path"])
        upstream = self.upstreams.get(service) if service else None
        if upstream is None:
            response = problem_response(Request(scope), 404, "NOT_FOUND", f"No resource at {scope['path']}.")
            return await response(scope, receive, send)
        # The request id the gateway took or made travels on, so the service logs and events carry it.
        request_id = (current_request_id() or "").encode("latin-1")
        headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
        headers.append((b"x-request-id", request_id))
        await upstream({**scope, "headers": headers}, receive, send)
