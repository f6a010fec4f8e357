"""`POST /api/v1/auth/token` (OAuth2 password flow), `POST /api/v1/auth/password` and `GET /api/v1/me`."""

from typing import Annotated

from crm_common.auth import Principal, current_principal
from crm_common.errors import ProblemError, problem_doc
from crm_common.schemas import ApiModel
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from crm_gateway.clientaddr import client_address
from crm_gateway.identity import service
from crm_gateway.identity.login import LoginThrottle
from crm_gateway.identity.schemas import PasswordChange

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(ApiModel):
    id: str
    email: str
    name: str
    roles: list[str]
    permissions: list[str]


# RFC 6749 §5.1: a response carrying a token must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _token_response(request: Request, user: service.SignIn) -> JSONResponse:
    issuer = request.app.state.token_issuer
    token = issuer.issue(
        user_id=user.id,
        email=user.email,
        name=user.full_name,
        roles=list(user.roles),
        token_version=user.token_version,
    )
    body = TokenResponse(access_token=token, expires_in=issuer.ttl_seconds)
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.post(
    "/auth/token",
    operation_id="auth_token",
    summary="Exchange email and password for an access token (OAuth2 password flow)",
    description="Failed attempts are throttled per account and per client address (429 "
    "`LOGIN_THROTTLED` with `Retry-After`); see the API guide, *Signing in*.",
    responses=problem_doc(400, 422, 429, 503),
    response_model=TokenResponse,
)
async def issue_token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]):
    state = request.app.state
    throttle: LoginThrottle = state.login_throttle
    address = client_address(request.scope, state.trusted_proxies)
    throttle.begin(form.username, address)
    user = None
    try:
        user = await service.authenticate(
            state.runtime.db, state.password_work, email=form.username, password=form.password
        )
    finally:
        throttle.end(form.username, address, ok=user is not None)
    if user is None:
        # OAuth2 clients look for `error`; everyone else for the problem `code`.
        raise ProblemError(
            400,
            "INVALID_CREDENTIALS",
            "The email or password is wrong, or the user is inactive.",
            extra={"error": "invalid_grant"},
            headers=NO_STORE,
        )
    return _token_response(request, user)


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
    request: Request, body: PasswordChange, principal: Annotated[Principal, Depends(current_principal)]
):
    state = request.app.state
    throttle: LoginThrottle = state.login_throttle
    address = client_address(request.scope, state.trusted_proxies)
    throttle.begin(principal.email, address)
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
        throttle.end(principal.email, address, ok=ok)
    state.session_guard.forget(principal.id)
    return _token_response(request, user)


@router.get("/me", operation_id="me_get", summary="The caller", tags=["users"], responses=problem_doc(401))
async def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    return Me(
        id=str(principal.id),
        email=principal.email,
        name=principal.name,
        roles=list(principal.roles),
        permissions=sorted(principal.permissions),
    )
