"""The grants of `POST /api/v1/auth/token` other than the password one, and OAuth2's error answers.

Errors at the token endpoint are problem documents that also carry RFC 6749 §5.2's members, `error`
and `error_description`, so OAuth2 client libraries and everyone else read the same answer:

| error | status | when |
|---|---|---|
| `invalid_request` | 400 | a parameter is missing, or the client authenticated two ways at once |
| `invalid_client` | 401 (`WWW-Authenticate: Basic`) | unknown client, wrong secret, revoked or expired client, inactive creator |
| `invalid_grant` | 400 | wrong email or password; unknown, spent, expired or revoked refresh token |
| `invalid_scope` | 400 | a requested permission is unknown or beyond what the client holds |
| `unsupported_grant_type` | 400 | a grant_type other than password, refresh_token, client_credentials |
"""

import base64
import binascii
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from crm_common.auth import PERMISSIONS, expand_permissions
from crm_common.errors import ProblemError
from fastapi import Request
from starlette.datastructures import State

from crm_gateway.identity import clients, refresh, roles
from crm_gateway.identity.oauth_schemas import TokenRequest, TokenResponse
from crm_gateway.identity.service import SignIn

# RFC 6749 §5.1: a response carrying a token must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CLIENT_CHALLENGE = {"WWW-Authenticate": 'Basic realm="crm", charset="UTF-8"'}


def oauth_error(
    status: int, error: str, code: str, detail: str, *, headers: dict[str, str] | None = None
) -> ProblemError:
    return ProblemError(
        status,
        code,
        detail,
        extra={"error": error, "error_description": detail},
        headers={**NO_STORE, **(headers or {})},
    )


def invalid_request(detail: str) -> ProblemError:
    return oauth_error(400, "invalid_request", "INVALID_REQUEST", detail)


def invalid_client(
    detail: str = "Client authentication failed (unknown client, wrong secret, or "
    "a revoked or expired client).",
) -> ProblemError:
    return oauth_error(401, "invalid_client", "INVALID_CLIENT", detail, headers=CLIENT_CHALLENGE)


def client_credentials_of(request: Request, form: TokenRequest) -> tuple[str, str]:
    """(client_id, secret) from HTTP Basic or the form (RFC 6749 §2.3.1), never both."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    basic = scheme.lower() == "basic"
    in_form = form.client_id is not None or form.client_secret is not None
    if basic and in_form:
        raise invalid_request("Authenticate the client one way: HTTP Basic or the form fields, not both.")
    if basic:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise invalid_client("The HTTP Basic credentials are not valid base64 of `id:secret`.") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise invalid_client("The HTTP Basic credentials are not valid base64 of `id:secret`.")
        # RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
        return unquote_plus(client_id), unquote_plus(secret)
    if not form.client_id or not form.client_secret:
        raise invalid_client(
            "The client_credentials grant needs client authentication: HTTP Basic, or "
            "client_id and client_secret in the form."
        )
    return form.client_id, form.client_secret


def narrowed(held: list[str], scope: str | None) -> list[str]:
    """The permissions a token carries: all the client holds, or the requested ones among them."""
    if not scope or not scope.strip():
        return held
    requested = scope.split()
    unknown = sorted(n for n in requested if expand_permissions([n]) - set(PERMISSIONS))
    if unknown:
        raise oauth_error(
            400, "invalid_scope", "INVALID_SCOPE", f"Unknown permissions: {', '.join(unknown)}."
        )
    wanted = expand_permissions(requested)
    beyond = sorted(wanted - set(held))
    if beyond:
        raise oauth_error(
            400, "invalid_scope", "INVALID_SCOPE", f"The client does not hold: {', '.join(beyond)}."
        )
    return sorted(wanted)


async def client_credentials(request: Request, form: TokenRequest) -> TokenResponse:
    state = request.app.state
    client_id, secret = client_credentials_of(request, form)
    async with state.runtime.db.transaction(read_only=True) as session:
        client = await clients.authenticate(session, client_id, secret)
    if client is None:
        raise invalid_client()
    permissions = narrowed(client.permissions, form.scope)
    issuer = state.token_issuer
    token = issuer.issue_claims(
        {
            "sub": str(client.user_id),
            "email": client.email,
            "name": f"OAuth client {client.name}",
            "roles": [],
            "perms": permissions,
            "scp": client.scopes,
            "cid": client.client_id,
            # The creator's: their deactivation, demotion or password change revokes this token too.
            "tv": client.token_version,
        },
        ttl_seconds=issuer.ttl_seconds,
        not_after=client.expires_at,
    )
    expires_in = issuer.ttl_seconds
    if client.expires_at is not None:
        expires_in = max(0, min(expires_in, int((client.expires_at - datetime.now(UTC)).total_seconds())))
    return TokenResponse(access_token=token, expires_in=expires_in, scope=" ".join(permissions))


async def for_person(request: Request, user: SignIn) -> TokenResponse:
    """An access token and the first refresh token of a new family (a sign-in)."""
    state = request.app.state
    issuer = state.token_issuer
    async with state.runtime.db.transaction() as session:
        refresh_token = await refresh.issue(
            session, user_id=user.id, token_version=user.token_version, ttl_seconds=issuer.refresh_ttl_seconds
        )
    return TokenResponse(
        access_token=await _access_token(state, user),
        expires_in=issuer.ttl_seconds,
        refresh_token=refresh_token,
    )


async def refresh_token(request: Request, form: TokenRequest) -> TokenResponse:
    if not form.refresh_token:
        raise invalid_request("The refresh_token grant needs `refresh_token`.")
    state = request.app.state
    issuer = state.token_issuer
    # Committed even when refused: a reuse revokes the family, and that must stick.
    async with state.runtime.db.transaction() as session:
        rotated = await refresh.rotate(session, form.refresh_token, ttl_seconds=issuer.refresh_ttl_seconds)
    if rotated.user is None:
        raise oauth_error(400, "invalid_grant", "INVALID_GRANT", rotated.reason)
    return TokenResponse(
        access_token=await _access_token(state, rotated.user),
        expires_in=issuer.ttl_seconds,
        refresh_token=rotated.refresh_token,
    )


async def _access_token(state: State, user: SignIn) -> str:
    """A person's token: what their roles grant now, permissions and record scopes (roles.py says why
    the scopes travel in the token)."""
    book = await roles.load_book(state.runtime.db)
    token: str = state.token_issuer.issue(
        user_id=user.id,
        email=user.email,
        name=user.full_name,
        roles=list(user.roles),
        token_version=user.token_version,
        permissions=book.permissions_for(user.roles),
        scopes=book.scope_claim(user.roles),
    )
    return token
