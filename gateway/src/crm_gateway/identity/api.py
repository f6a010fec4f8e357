"""`POST /api/v1/auth/token` (OAuth2 password flow) and `GET /api/v1/me`."""

from typing import Annotated

from crm_common.app import SessionDep
from crm_common.auth import Principal, current_principal
from crm_common.errors import ProblemError, problem_doc
from crm_common.schemas import ApiModel
from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from crm_gateway.identity import service

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


@router.post(
    "/auth/token",
    operation_id="auth_token",
    summary="Exchange email and password for an access token (OAuth2 password flow)",
    responses=problem_doc(400, 422),
)
async def issue_token(
    request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep
) -> TokenResponse:
    user = await service.authenticate(session, email=form.username, password=form.password)
    if user is None:
        # OAuth2 clients look for `error`; everyone else for the problem `code`.
        raise ProblemError(
            400,
            "INVALID_CREDENTIALS",
            "The email or password is wrong, or the user is inactive.",
            extra={"error": "invalid_grant"},
        )
    issuer = request.app.state.token_issuer
    token = issuer.issue(user_id=user.id, email=user.email, name=user.full_name, roles=list(user.roles))
    return TokenResponse(access_token=token, expires_in=issuer.ttl_seconds)


@router.get("/me", operation_id="me_get", summary="The caller", tags=["users"], responses=problem_doc(401))
async def me(principal: Annotated[Principal, Depends(current_principal)]) -> Me:
    return Me(
        id=str(principal.id),
        email=principal.email,
        name=principal.name,
        roles=list(principal.roles),
        permissions=sorted(principal.permissions),
    )
