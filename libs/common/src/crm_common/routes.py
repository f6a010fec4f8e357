"""Every route an app serves, with its full path, for checks over all of them (405 `Allow`, bounded
query parameters, guarded bodies). FastAPI keeps included routers nested (`app.routes` lists a
router, not its routes); `iter_route_contexts` resolves each to the route as served."""

from collections.abc import Iterator
from dataclasses import dataclass
from re import Pattern

from fastapi.routing import APIRoute, iter_route_contexts
from starlette.applications import Starlette
from starlette.routing import Route, compile_path


@dataclass(frozen=True)
class ServedRoute:
    path: str
    regex: Pattern[str]
    params: int
    methods: frozenset[str]
    route: Route  # as declared: an APIRoute has the dependant (parameters, body)


def served_routes(app: Starlette) -> Iterator[ServedRoute]:
    for context in iter_route_contexts(app.routes):
        route, path, methods = context.original_route, context.path, context.methods
        if not isinstance(route, Route) or not path or not methods:
            continue  # mounts answer for themselves
        regex, _, convertors = compile_path(path)
        yield ServedRoute(path, regex, len(convertors), frozenset(methods), route)


def api_routes(app: Starlette) -> Iterator[tuple[ServedRoute, APIRoute]]:
    for served in served_routes(app):
        if isinstance(served.route, APIRoute):
            yield served, served.route
