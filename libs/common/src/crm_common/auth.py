"""Access tokens: the gateway signs them (Ed25519), every service verifies them itself.

Only EdDSA is accepted, so `alg=none` or an HMAC token forged with the public key is refused.
"""

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crm_common.errors import ProblemError

ALGORITHM = "EdDSA"

# Each context has a read and a write permission; `admin` (users, teams, API keys, pipeline stages,
# SLA policies) implies every other. The matrix below is documented in docs/api-guide.md.
# `webhooks` (subscriptions of HTTP endpoints to every event) is granted by no role but admin: an
# integration gets it through an API key.
DATA_CONTEXTS = ("customers", "sales", "activities", "tickets", "campaigns")
CONTEXTS = (*DATA_CONTEXTS, "webhooks")
PERMISSIONS = (*(f"{c}:{a}" for c in CONTEXTS for a in ("read", "write")), "admin")


def _rw(*contexts: str) -> set[str]:
    return {f"{c}:{a}" for c in contexts for a in ("read", "write")}


def _r(*contexts: str) -> set[str]:
    return {f"{c}:read" for c in contexts}


# The seed's names (its action handlers ask for `customer_access` / `sales_access`) and the names
# tokens and API keys carried before read and write were split: each is read and write of a context.
LEGACY_PERMISSIONS: dict[str, frozenset[str]] = {
    "customer_access": frozenset(_rw("customers")),
    "sales_access": frozenset(_rw("sales")),
    "activity_access": frozenset(_rw("activities")),
    "support_access": frozenset(_rw("tickets")),
    "marketing_access": frozenset(_rw("campaigns")),
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "sales_manager": frozenset(_rw("customers", "sales", "activities", "campaigns") | _r("tickets")),
    "sales_rep": frozenset(_rw("customers", "sales", "activities") | _r("tickets", "campaigns")),
    "support_agent": frozenset(_rw("customers", "tickets", "activities") | _r("sales")),
    "marketer": frozenset(_rw("customers", "campaigns", "activities") | _r("sales")),
    "read_only": frozenset(_r(*DATA_CONTEXTS)),
}


# Record scopes (EspoCRM's model): per role and data context, which records a read and a write may
# touch. `own`: those assigned to / owned by the caller; `team`: those plus records whose team is one
# of the caller's teams or whose owner is a member of one; `all`: every record. A scope only widens
# what a permission allows; it never grants one. These are the defaults the gateway's migration seeds
# into its `roles` table; admins change them through `PUT /api/v1/roles/{name}` and tokens carry the
# result (claim `scp`). Enforced by crm_common.record_scope in each service's queries.
SCOPE_LEVELS = ("own", "team", "all")  # narrowest first
Scopes = dict[str, tuple[str, str]]  # context -> (read scope, write scope)


def _scopes(default: str, **per_context: str) -> Scopes:
    return {c: (per_context.get(c, default),) * 2 for c in DATA_CONTEXTS}


ROLE_SCOPES: dict[str, Scopes] = {
    "admin": _scopes("all"),
    "sales_manager": _scopes("team"),
    "sales_rep": _scopes("team"),
    "support_agent": _scopes("team", tickets="all"),
    "marketer": _scopes("team", campaigns="all"),
    "read_only": _scopes("all"),
}


def widest(levels: Iterable[str]) -> str:
    """The widest of the given scope levels (`own` when there are none)."""
    return max(levels, key=SCOPE_LEVELS.index, default="own")


def scopes_for(definitions: Iterable[Scopes]) -> Scopes:
    """What several roles' scopes give together: per context and access the widest."""
    definitions = list(definitions)
    out: Scopes = {}
    for context in DATA_CONTEXTS:
        read = widest(d[context][0] for d in definitions if context in d)
        write = widest(d[context][1] for d in definitions if context in d)
        out[context] = (read, write)
    return out


def expand_permissions(names: Iterable[str]) -> frozenset[str]:
    """The permissions `names` stand for: legacy names become read and write of their context."""
    out: set[str] = set()
    for name in names:
        out |= LEGACY_PERMISSIONS.get(name, {name})
    return frozenset(out)


def new_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as PEM (private, public), for tests and benchmarks that sign their
    own tokens (the gateway keeps its pair in CRM_DATA_DIR)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def permissions_for(roles: list[str] | tuple[str, ...]) -> frozenset[str]:
    """What the built-in roles grant together (unknown role names grant nothing)."""
    perms: set[str] = set()
    for role in roles:
        perms |= ROLE_PERMISSIONS.get(role, frozenset())
    return frozenset(perms)


@dataclass(frozen=True)
class Principal:
    id: uuid.UUID
    email: str
    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    # The user's token version when the token was issued (claim `tv`; 0 for tokens without it).
    token_version: int = 0
    # Record scopes per data context (claim `scp`): (read, write); see ROLE_SCOPES. A context it does
    # not name is `own`.
    scopes: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)

    def can(self, permission: str) -> bool:
        """True when the caller holds `permission` (a legacy name: all it stands for); admins hold all."""
        if "admin" in self.permissions:
            return True
        return expand_permissions([permission]) <= self.permissions

    def scope(self, context: str, access: Literal["read", "write"]) -> str:
        """The caller's record scope for `access` in `context`: `all`, `team` or `own`."""
        if "admin" in self.permissions:
            return "all"
        pair = self.scopes.get(context)
        if pair is None:
            return "own"
        return pair[0] if access == "read" else pair[1]


def _unauthorized(detail: str, *, code: str = "UNAUTHORIZED") -> ProblemError:
    return ProblemError(401, code, detail, headers={"WWW-Authenticate": 'Bearer realm="crm"'})


class TokenVerifier:
    """Verifies access tokens with the gateway's public key, loaded lazily so a service may start
    before the gateway has written its key.

    A verified token is remembered until its expiry (at most `cache_size` of them, least recently
    used first out): checking the signature again would give the same answer, and it was ~8% of a
    GET's CPU. Only valid tokens are kept; an expired one is verified again, and refused as such.
    Revocation does not depend on this: the session guard checks the user on every request."""

    def __init__(
        self, load_key: Callable[[], str | None], *, issuer: str, audience: str, cache_size: int = 10_000
    ):
        self._load_key = load_key
        self._key: str | None = None
        self.issuer = issuer
        self.audience = audience
        self.cache_size = cache_size
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    @property
    def has_key(self) -> bool:
        if self._key is None:
            self._key = self._load_key()
        return self._key is not None

    def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() < cached[0]:
                self._verified.move_to_end(token)
                return cached[1]
            del self._verified[token]
        principal, expires = self._decode(token)
        if self.cache_size:
            self._verified[token] = (expires, principal)
            if len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        if not self.has_key or self._key is None:
            raise ProblemError(503, "AUTH_UNAVAILABLE", "The token verification key is not configured yet.")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
            principal = Principal(
                id=uuid.UUID(claims["sub"]),
                email=claims.get("email", ""),
                name=claims.get("name", ""),
                roles=tuple(claims.get("roles", ())),
                permissions=expand_permissions(claims.get("perms", ())),
                token_version=int(claims.get("tv", 0)),
                scopes=_scope_claim(claims),
            )
            return principal, float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise _unauthorized("The access token has expired.") from None
        except (jwt.InvalidTokenError, ValueError, KeyError):
            raise _unauthorized("The access token is not valid.") from None


def _scope_claim(claims: dict[str, Any]) -> Scopes:
    """`scp` as the gateway signs it ({context: [read, write]}); a token issued before scopes existed
    has none and gets the default scopes of the roles it names."""
    raw = claims.get("scp")
    if raw is None:
        return scopes_for(ROLE_SCOPES[r] for r in claims.get("roles", ()) if r in ROLE_SCOPES)
    out: Scopes = {}
    for context, pair in dict(raw).items():
        read, write = pair
        if read not in SCOPE_LEVELS or write not in SCOPE_LEVELS:
            raise ValueError(f"bad scope {pair!r}")
        out[str(context)] = (read, write)
    return out


SessionState = tuple[int, bool]  # (the user's current token version, active)


class SessionGuard:
    """Refuses a token whose user has since been deactivated, lost a role or changed password: the
    gateway raises the user's token version then, and the services learn it from the directory events.
    `lookup` reads (token version, active) of a user, None when unknown (a user the directory has not
    heard of yet is not refused: their token is newer than anything it could revoke). Answers are
    cached `ttl` seconds per user so a burst of requests costs one read; with the event lag this keeps
    a revocation's reach well inside 5 s."""

    def __init__(self, lookup: Callable[[uuid.UUID], Awaitable[SessionState | None]], *, ttl: float = 1.0):
        self._lookup = lookup
        self.ttl = ttl
        self._cache: OrderedDict[uuid.UUID, tuple[float, SessionState | None]] = OrderedDict()
        self._pending: dict[uuid.UUID, asyncio.Future[SessionState | None]] = {}

    def forget(self, user_id: uuid.UUID) -> None:
        self._cache.pop(user_id, None)

    def clear(self) -> None:
        self._cache.clear()

    async def _state(self, user_id: uuid.UUID) -> SessionState | None:
        now = time.monotonic()
        cached = self._cache.get(user_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        # One lookup per user at a time: a burst of that user's requests waits for the same answer.
        pending = self._pending.get(user_id)
        if pending is None:
            pending = self._pending[user_id] = asyncio.ensure_future(self._lookup(user_id))
            try:
                state = await asyncio.shield(pending)
            finally:
                self._pending.pop(user_id, None)
            self._cache[user_id] = (now + self.ttl, state)
            self._cache.move_to_end(user_id)
            while len(self._cache) > 50_000:
                self._cache.popitem(last=False)
            return state
        return await asyncio.shield(pending)

    async def check(self, principal: Principal) -> None:
        state = await self._state(principal.id)
        if state is None:
            return
        token_version, active = state
        if not active:
            raise _unauthorized("The user is deactivated.", code="TOKEN_REVOKED")
        if principal.token_version < token_version:
            raise _unauthorized(
                "The access token was revoked (a role removed or the password changed); sign in again.",
                code="TOKEN_REVOKED",
            )


_bearer = HTTPBearer(
    auto_error=False, description="Access token from `POST /api/v1/auth/token`, or an API key."
)


# async although they do no I/O: FastAPI runs sync dependencies in a thread pool, which costs more.
async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("An access token is required (Authorization: Bearer ...).")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = verifier.verify(credentials.credentials)
    guard: SessionGuard | None = getattr(request.app.state, "session_guard", None)
    if guard is not None:
        await guard.check(principal)
    return principal


def _forbidden(permission: str) -> ProblemError:
    return ProblemError(403, "FORBIDDEN", f"This operation needs the `{permission}` permission.")


# What `require` and `require_access` give: a dependency that answers the caller (FastAPI reads its
# parameters from its signature).
PrincipalDependency = Callable[..., Awaitable[Principal]]


def require(permission: str) -> PrincipalDependency:
    """Dependency: the caller, who must hold `permission` (admins hold all)."""

    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(permission):
            raise _forbidden(permission)
        return principal

    return check


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def require_access(context: str, access: Literal["read", "write"] | None = None) -> PrincipalDependency:
    """Dependency: the caller, who must hold `<context>:read` for GET and HEAD and `<context>:write`
    for any other method, unless `access` names one (a POST that only reads, like a preview)."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}")

    async def check(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        wanted = access or ("read" if request.method in READ_METHODS else "write")
        permission = f"{context}:{wanted}"
        if not principal.can(permission):
            raise _forbidden(permission)
        return principal

    return check
