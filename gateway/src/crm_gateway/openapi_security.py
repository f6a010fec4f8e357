"""How callers authenticate, as the merged OpenAPI document declares it: a bearer token (what every
operation takes, an access token or an API key) and the OAuth2 flows that issue tokens, so that
generated clients and tools such as Swagger UI know the token endpoint and its grants."""

from typing import Any

from crm_common.auth import PERMISSIONS

TOKEN_URL = "/api/v1/auth/token"
BEARER = "HTTPBearer"
OAUTH2 = "OAuth2"


def oauth2_scheme() -> dict[str, Any]:
    scopes = {p: f"the `{p}` permission" for p in PERMISSIONS}
    return {
        "type": "oauth2",
        "description": "People: the password grant, with rotating refresh tokens. Integrations: the "
        "client credentials grant with an OAuth client (`/api/v1/oauth-clients`); `scope` optionally "
        "narrows a token to some of the client's permissions. Tokens are sent as `Authorization: "
        "Bearer <token>`.",
        "flows": {
            "password": {"tokenUrl": TOKEN_URL, "refreshUrl": TOKEN_URL, "scopes": {}},
            "clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": scopes},
        },
    }


def declare_security(doc: dict[str, Any]) -> None:
    """In place: the OAuth2 scheme beside the bearer one, accepted wherever a bearer token is."""
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    if BEARER not in schemes:
        return
    schemes[OAUTH2] = oauth2_scheme()
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            security = operation.get("security")
            if security and {BEARER: []} in security and {OAUTH2: []} not in security:
                security.append({OAUTH2: []})
