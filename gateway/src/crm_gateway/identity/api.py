"""`POST /api/v1/auth/token` (OAuth2 password, refresh_token and client credentials grants),
`POST /api/v1/auth/logout`, `POST /api/v1/auth/password`, `GET /api/v1/me` and `PATCH /api/v1/me` (the
caller's own preferences)."""

from typing import Annotated

import sqlalchemy as sa
from crm_common.app import SessionDep
from crm_common.auth import DATA_CONTEXTS, Principal, current_principal
from crm_common.errors import ProblemError, not_found, problem_doc
from crm_common.schemas import ApiModel, StrictApiModel
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from crm_gateway.clientaddr import client_address
from crm_gateway.identity import grants, refresh, service
from crm_gateway.identity.grants import NO_STORE
from crm_gateway.identity.login import LoginThrottle, RedisLoginThrottle
from crm_gateway.identity.models import User
from crm_gateway.identity.oauth_schemas import AuthLogoutRequest, TokenRequest, TokenResponse
from crm_gateway.identity.schemas import ContextScope, PasswordChangeRequest
from crm_gateway.views.labels import Locale

router = APIRouter(prefix="/api/v1", tags=["auth"])
# The users table itself, for the Core statements of the caller's preferences (see update_me).
_users: sa.Table = User.__table__  # type: ignore[attr-defined]  # SQLModel does not declare it


class Me(ApiModel):
    id: str
    email: str
    name: str
    roles: list[str]
    permissions: list[str]
    scopes: dict[str, ContextScope] = Field(
        description="The caller's record scope per data context (see `GET /api/v1/roles`)."
    )
    locale: Locale | None = Field(
        default=None,
        description="The caller's chosen language for the console and the views' labels; null: none "
        "chosen, so their browser's `Accept-Language` decides (else English).",
    )


class PreferencesUpdateRequest(StrictApiModel):
    locale: Locale | None = Field(
        default=None, description="`en` or `zh` (422 otherwise); null forgets the choice."
    )


def _answer(body: TokenResponse) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


@router.post(
    "/auth/token",
    operation_id="auth_token",
    summary="Get an access token: password, refresh_token or client_credentials grant (OAuth2)",
    description="A form (`application/x-www-form-urlencoded`), as RFC 6749 says. `grant_type=password` "
    "(the default) takes `username` (the email) and `password`; `grant_type=client_credentials` "
    "authenticates an OAuth client with HTTP Basic or `client_id` and `client_secret` in the form, "
    "and takes an optional `scope`. Errors carry RFC 6749 §5.2's `error` (`invalid_request`, "
    "`invalid_client` (401), `invalid_grant`, `invalid_scope`, `unsupported_grant_type`) beside the "
    "problem `code`. Failed password sign-ins are throttled per account and per client address "
    "(429 `LOGIN_THROTTLED` with `Retry-After`); see the API guide, *Authentication*.",
    responses=problem_doc(400, 401, 429, 503),
    response_model=TokenResponse,
    response_model_exclude_none=True,
)
async def issue_token(request: Request, form: Annotated[TokenRequest, Depends()]) -> JSONResponse:
    if form.grant_type == "client_credentials":
        return _answer(await grants.client_credentials(request, form))
    if form.grant_type == "refresh_token":
        return _answer(await grants.refresh_token(request, form))
    if form.grant_type != "password":
        raise grants.oauth_error(
            400,
            "unsupported_grant_type",
            "UNSUPPORTED_GRANT_TYPE",
            f"grant_type {form.grant_type!r} is not supported: use password, refresh_token or client_credentials.",
        )
    if not form.username:
        raise grants.invalid_request("The password grant needs `username` and `password`.")
    # An empty password (which the form reads as none) is a wrong one, answered as any other.
    password = form.password or ""
    state = request.app.state
    throttle: LoginThrottle | RedisLoginThrottle = state.login_throttle
    attempt = await throttle.start(form.username, client_address(request.scope, state.trusted_proxies))
    user = None
    try:
        user = await service.authenticate(
            state.runtime.db, state.password_work, email=form.username, password=password
        )
    finally:
        await throttle.finish(attempt, ok=user is not None)
    if user is None:
        raise grants.oauth_error(
            400,
            "invalid_grant",
            "INVALID_CREDENTIALS",
            "The email or password is wrong, or the user is inactive.",
        )
    return _answer(await grants.for_person(request, user))


@router.post(
    "/auth/logout",
    operation_id="auth_logout",
    summary="Sign out: revoke a refresh token and every token rotated from the same sign-in",
    description="No access token needed: holding the refresh token is enough. Answers 204 for an unknown "
    "or already revoked token too (RFC 7009 §2.2). Access tokens already issued run until they expire.",
    status_code=204,
    responses=problem_doc(422),
)
async def logout(request: Request, body: AuthLogoutRequest) -> Response:
    async with request.app.state.runtime.db.transaction() as session:
        await refresh.sign_out(session, body.refresh_token)
    return Response(status_code=204, headers=NO_STORE)


@router.post(
    "/auth/password",
    operation_id="auth_password_change",
    summary="Change your own password (the current one is required); answers a new token",
    description="The new password follows the password rule (422 `WEAK_PASSWORD`). Every token issued "
    "before stops working, in every service, within seconds; use the one in this response. A wrong "
    "current password is a 400 `INVALID_CURRENT_PASSWORD` and counts as a failed sign-in.",
    responses=problem_doc(400, 401, 409, 422, 429),
    response_model=TokenResponse,
)
async def change_password(
    request: Request, body: PasswordChangeRequest, principal: Annotated[Principal, Depends(current_principal)]
) -> JSONResponse:
    state = request.app.state
    throttle: LoginThrottle | RedisLoginThrottle = state.login_throttle
    attempt = await throttle.start(principal.email, client_address(request.scope, state.trusted_proxies))
    ok = False
    try:
        user = await service.change_password(
            state.runtime.db,
            state.password_work,
            user_id=principal.id,
            current=body.current_password,
            new=body.new_password,
        )
        ok = True
    except ProblemError as exc:
        ok = exc.code != "INVALID_CURRENT_PASSWORD"
        raise
    finally:
        await throttle.finish(attempt, ok=ok)
    state.session_guard.forget(principal.id)
    return _answer(await grants.for_person(request, user))


def _me(principal: Principal, locale: str | None) -> Me:
    return Me(
        id=str(principal.id),
        email=principal.email,
        name=principal.name,
        roles=list(principal.roles),
        permissions=sorted(principal.permissions),
        scopes={
            c: ContextScope(read=principal.scope(c, "read"), write=principal.scope(c, "write"))
            for c in DATA_CONTEXTS
        },
        locale=locale,
    )


@router.get("/me", operation_id="me_get", summary="The caller", tags=["users"], responses=problem_doc(401))
async def me(principal: Annotated[Principal, Depends(current_principal)], session: SessionDep) -> Me:
    # Who the caller is comes from the token; their preferences from their user record.
    locale = await session.scalar(sa.select(_users.c.locale).where(_users.c.id == principal.id))
    return _me(principal, locale)


@router.patch(
    "/me",
    operation_id="me_update",
    summary="Change your own preferences (your language)",
    description="Only the fields sent change. A preference is not an edit of the user record: the "
    "user's `version` (ETag) stays, so it never conflicts with an admin's change, and no event is "
    "published.",
    tags=["users"],
    responses=problem_doc(401, 404, 422),
)
async def update_me(
    body: PreferencesUpdateRequest,
    principal: Annotated[Principal, Depends(current_principal)],
    session: SessionDep,
) -> Me:
    table = _users
    row = (await session.execute(sa.select(table.c.locale).where(table.c.id == principal.id))).first()
    if row is None:  # a token outliving its user
        raise not_found("user", principal.id)
    locale = row.locale
    if "locale" in body.model_fields_set:
        # A Core UPDATE, so the ORM's version counter is not raised (see the description).
        await session.execute(sa.update(table).where(table.c.id == principal.id).values(locale=body.locale))
        locale = body.locale
    return _me(principal, locale)
