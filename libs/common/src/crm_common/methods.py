"""405 Method Not Allowed with the full `Allow` header, for every app (services and gateway).

Starlette answers 405 only when no route of the path takes the method, naming the methods of the
first route it found (one of them); and a method the path does not declare often fell through to a
templated sibling: `DELETE /customers/merge` reached `DELETE /customers/{id}` and was a 422 for an
invalid id. Here the path's methods are read as the OpenAPI document lists them: a path with no
parameters (`/customers/merge`) is its own resource and wins over a templated one that also
matches. A method outside the set is a 405 problem naming them all; OPTIONS answers 204 with them.
"""

from re import Pattern

# Where Starlette defines it (starlette.routing uses it without re-exporting it): the path a route
# matches, the root path of a mounted app taken off.
from starlette._utils import get_route_path
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_common.errors import problem_response
from crm_common.routes import served_routes

SCOPE_KEY = "crm.allowed_methods"


def _table(app: Starlette) -> list[tuple[Pattern[str], int, frozenset[str]]]:
    by_path: dict[str, tuple[Pattern[str], int, set[str]]] = {}
    for served in served_routes(app):
        by_path.setdefault(served.path, (served.regex, served.params, set()))[2].update(served.methods)
    return [(regex, params, frozenset(methods)) for regex, params, methods in by_path.values()]


def allowed_methods(app: Starlette, path: str) -> frozenset[str] | None:
    """The methods of the most specific path declared in `app` that matches, or None."""
    table = getattr(app.state, "allowed_methods_table", None)
    if table is None:
        # Built on first use: every router is included by then.
        table = app.state.allowed_methods_table = _table(app)
    matches = [(params, methods) for regex, params, methods in table if regex.match(path)]
    if not matches:
        return None
    fewest = min(params for params, _ in matches)
    return frozenset().union(*(methods for params, methods in matches if params == fewest))


class MethodCheck:
    """ASGI middleware; inside the request-id middleware, so its problems carry the request id."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        allowed = allowed_methods(scope["app"], get_route_path(scope))
        # Later middleware of this app (consistency tokens) reads the answer instead of matching again.
        scope[SCOPE_KEY] = allowed
        method = scope["method"]
        if allowed is None or method in allowed:
            return await self.app(scope, receive, send)
        header = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            response = Response(status_code=204, headers={"Allow": header})
        else:
            response = problem_response(
                Request(scope),
                405,
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed here; allowed: {header}.",
                headers={"Allow": header},
            )
        await response(scope, receive, send)
