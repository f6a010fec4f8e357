"""The gateway: identity, routing to the services and one OpenAPI document."""

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from crm_common.app import Runtime, create_service_app
from crm_common.auth import SessionGuard
from crm_common.contracts import catalogue
from crm_common.events.bus import Bus
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from crm_gateway import console, docs_pages, openapi
from crm_gateway.actions.api import router as actions_router
from crm_gateway.clientaddr import parse_networks
from crm_gateway.dashboard.api import router as dashboard_router
from crm_gateway.frontdoor import FrontDoor
from crm_gateway.identity import service as identity
from crm_gateway.identity.admin_api import key_router, role_router, team_router, user_router
from crm_gateway.identity.api import router as identity_router
from crm_gateway.identity.client_api import router as oauth_client_router
from crm_gateway.identity.login import PasswordWork, make_login_throttle
from crm_gateway.identity.tokens import TokenIssuer, load_or_create_keypair
from crm_gateway.internal import ServiceClient
from crm_gateway.privacy import router as privacy_router
from crm_gateway.proxy import HttpUpstream
from crm_gateway.ratelimit import make_rate_limiter
from crm_gateway.routing import Dispatcher, service_for
from crm_gateway.securityheaders import SecurityHeaders
from crm_gateway.settings import SERVICES, GatewaySettings
from crm_gateway.views.api import router as views_router

log = logging.getLogger("crm.gateway")

DESCRIPTION = """The CRM platform's public API: customers and leads, the sales pipeline, activities,
support tickets and marketing campaigns.

Authenticate with `POST /api/v1/auth/token` (OAuth2: the password grant for people, the client
credentials grant for integrations) and send the access token as `Authorization: Bearer <token>`. Errors are RFC 9457 problem documents with a stable `code`."""


def create_app(
    settings: GatewaySettings | None = None,
    *,
    local_services: Mapping[str, FastAPI] | None = None,
    bus: Bus | None = None,
) -> FastAPI:
    """`local_services`: service apps running in this process (embedded default); every other
    service is reached at its `CRM_GATEWAY_<SERVICE>_URL`."""
    settings = settings or GatewaySettings()
    local_services = dict(local_services or {})
    private_pem, public_pem = load_or_create_keypair(settings.private_key_path(), settings.public_key_path())
    settings.jwt_public_key = public_pem

    remote: dict[str, HttpUpstream] = {}
    for name in SERVICES:
        if name in local_services:
            continue
        url = settings.upstream_url(name)
        if url:
            remote[name] = HttpUpstream(
                url,
                timeout=settings.upstream_timeout_seconds,
                max_body_bytes=settings.max_body_bytes,
                overload_retry_seconds=settings.upstream_overload_retry_seconds,
            )
        else:
            log.warning("service %s has no upstream (set CRM_GATEWAY_%s_URL)", name, name.upper())

    async def startup(runtime: Runtime) -> None:
        for upstream in remote.values():
            await upstream.start()
        try:
            async with runtime.db.transaction() as session:
                generated = await identity.bootstrap_admin(
                    session, email=settings.admin_email, password=settings.admin_password
                )
        except identity.AdminPasswordRefused as exc:
            log.error("%s", exc)  # one readable line before the start-up failure's traceback
            raise
        if generated:
            # Printed once, on the first start only: it is not stored anywhere in clear.
            print(
                f"\n  CRM admin created: {settings.admin_email} / {generated}\n"
                "  (set CRM_ADMIN_PASSWORD to choose it; this is shown only once)\n",
                file=sys.stdout,
                flush=True,
            )

    async def shutdown(runtime: Runtime) -> None:
        await service_client.close()
        if limiter is not None:
            await limiter.close()
        await login_throttle.close()
        for upstream in remote.values():
            await upstream.close()

    login_throttle = make_login_throttle(settings)
    app = create_service_app(
        settings,
        title="CRM API",
        description=DESCRIPTION,
        routers=[
            identity_router,
            user_router,
            team_router,
            key_router,
            oauth_client_router,
            role_router,
            dashboard_router,
            views_router,
            actions_router,
            privacy_router,
        ],
        migrations=Path(__file__).parent / "migrations",
        bus=bus,
        on_startup=startup,
        on_shutdown=shutdown,
        document_event_admin=True,
        # Each service's share is admitted here, before auth and the proxy (crm_common.admission).
        admission_upstream_of=service_for,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.session_guard = SessionGuard(partial(identity.session_state, app.state))
    app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
    app.state.password_work = PasswordWork(
        concurrency=settings.login_hash_concurrency or max(1, (os.cpu_count() or 2) // 2),
        queue=settings.login_hash_queue,
    )
    # In Redis when CRM_REDIS_URL is set (every replica counts every failure), else in this process.
    app.state.login_throttle = login_throttle
    service_client = ServiceClient(local_services, remote)
    app.state.service_client = service_client
    app.state.token_issuer = TokenIssuer(
        private_pem,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )

    sources: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {}
    for name, service_app in local_services.items():
        sources[name] = _local_openapi(service_app)
    for name, upstream in remote.items():
        sources[name] = _remote_openapi(upstream)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(openapi.merge(app.openapi(), await openapi.service_documents(sources)))

    @app.get("/asyncapi.json", include_in_schema=False)
    async def asyncapi_document() -> JSONResponse:
        return JSONResponse(catalogue.asyncapi_document())

    docs_pages.install(app)
    console.install(app)

    limiter = make_rate_limiter(settings)
    upstreams: dict[str, ASGIApp] = {**local_services, **remote}
    dispatcher = Dispatcher(upstreams)
    app.mount("/", dispatcher)
    # Innermost (after the request-id middleware), so its problems carry the request id.
    app.user_middleware.append(
        Middleware(
            FrontDoor,
            gateway=app,
            dispatcher=dispatcher,
            max_body_bytes=settings.max_body_bytes,
            max_bulk_body_bytes=settings.max_bulk_body_bytes,
            rate_limit=settings.rate_limit_requests,
            rate_window_seconds=settings.rate_limit_window_seconds,
            limiter=limiter,
            key_cache_seconds=settings.api_key_cache_seconds,
        )
    )
    # Outermost, so every response has them, whoever answered.
    app.user_middleware.insert(0, Middleware(SecurityHeaders))
    return app


def _local_openapi(service_app: FastAPI) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def fetch() -> dict[str, Any]:
        return service_app.openapi()

    return fetch


def _remote_openapi(upstream: HttpUpstream) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def fetch() -> dict[str, Any]:
        return await upstream.get_json("/openapi.json")

    return fetch
