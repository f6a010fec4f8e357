"""Request and response models of the token endpoint and of OAuth clients."""

import uuid
from datetime import datetime
from typing import Annotated

from crm_common.schemas import ApiModel, StrictApiModel
from fastapi import Form
from pydantic import BaseModel, Field

from crm_gateway.identity.schemas import Permission

GRANT_TYPES = ("password", "refresh_token", "client_credentials")


class TokenResponse(BaseModel):
    """RFC 6749 §5.1 (snake_case, as OAuth2 clients expect)."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str | None = Field(
        default=None,
        description="Password and refresh_token grants only: use it once, with grant_type=refresh_token.",
    )
    scope: str | None = Field(
        default=None,
        description="client_credentials grant: the permissions the token carries, space-separated.",
    )


class TokenRequest:
    """The form of `POST /auth/token` (application/x-www-form-urlencoded, RFC 6749 §4.3, §4.4, §6).
    Every field is optional here so that a missing one is answered as OAuth2 says (400
    `invalid_request`), not as a validation problem."""

    def __init__(
        self,
        grant_type: Annotated[
            str,
            Form(
                description="`password` (a person), `refresh_token` (a person's next token) or "
                "`client_credentials` (an integration).",
                json_schema_extra={"enum": list(GRANT_TYPES)},
            ),
        ] = "password",
        username: Annotated[str | None, Form(description="password grant: the email")] = None,
        password: Annotated[str | None, Form(description="password grant")] = None,
        refresh_token: Annotated[str | None, Form(description="refresh_token grant")] = None,
        scope: Annotated[
            str | None,
            Form(
                description="client_credentials grant: optional space-separated permissions to narrow the token to"
            ),
        ] = None,
        client_id: Annotated[
            str | None, Form(description="client_credentials grant, unless sent with HTTP Basic")
        ] = None,
        client_secret: Annotated[
            str | None, Form(description="client_credentials grant, unless sent with HTTP Basic")
        ] = None,
    ) -> None:
        self.grant_type = grant_type
        self.username = username
        self.password = password
        self.refresh_token = refresh_token
        self.scope = scope
        self.client_id = client_id
        self.client_secret = client_secret


class OAuthClientCreateRequest(StrictApiModel):
    name: str = Field(min_length=1, max_length=200)
    permissions: list[Permission] = Field(
        min_length=1,
        description="A subset of the creator's permissions. While the client lives it never does more than "
        "its creator currently may: its permissions are intersected with the creator's at every token.",
    )
    expires_at: datetime | None = Field(default=None, description="Optional; RFC 3339 with an offset.")


class OAuthClientRead(ApiModel):
    id: uuid.UUID
    client_id: str
    name: str
    permissions: list[str]
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class OAuthClientCreated(OAuthClientRead):
    client_secret: str = Field(description="The secret. Shown this once: only its hash is stored.")


class AuthLogoutRequest(StrictApiModel):
    refresh_token: str = Field(max_length=200, description="A refresh token of the sign-in to end.")
