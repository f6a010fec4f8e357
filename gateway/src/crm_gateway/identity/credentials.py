"""What an integration credential (an API key or an OAuth client) may carry, shared by both kinds.

A credential's permissions are chosen from its creator's when it is made, and while it lives they are
intersected with what its creator holds now: a demoted creator's credentials lose what the creator
lost, a deactivated creator's stop. Secrets are 256-bit random strings kept as SHA-256 (see apikeys.py
for why a fast hash is right for them).
"""

import hashlib
from datetime import datetime

from crm_common.auth import PERMISSIONS, Principal, expand_permissions
from crm_common.errors import FieldError, ProblemError
from crm_common.models import utcnow

from crm_gateway.identity.roles import RoleBook


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def grantable(requested: list[str], *, creator: Principal, kind: str) -> list[str]:
    """The permissions `requested` stands for, all held by `creator` (else 422 `PERMISSION_NOT_HELD`)."""
    wanted = set(expand_permissions(requested))
    beyond = sorted(p for p in wanted if not creator.can(p))
    if beyond:
        raise ProblemError(
            422,
            "PERMISSION_NOT_HELD",
            f"A {kind} cannot carry permissions its creator lacks: {', '.join(beyond)}.",
            errors=[
                FieldError(field="permissions", message=f"not held: {p}", code="not_held") for p in beyond
            ],
        )
    return sorted(wanted)


def check_expiry(expires_at: datetime | None) -> None:
    """An expiry must carry an offset and lie ahead (422 `VALIDATION_ERROR` on `expiresAt`)."""
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ProblemError(
            422,
            "VALIDATION_ERROR",
            "`expiresAt` needs a time zone offset.",
            errors=[FieldError(field="expiresAt", message="naive datetime", code="naive_datetime")],
        )
    if expires_at <= utcnow():
        raise ProblemError(
            422,
            "VALIDATION_ERROR",
            "`expiresAt` is in the past.",
            errors=[FieldError(field="expiresAt", message="in the past", code="in_the_past")],
        )


def usable(*, revoked_at: datetime | None, expires_at: datetime | None, creator_active: bool) -> bool:
    if revoked_at is not None or not creator_active:
        return False
    return expires_at is None or expires_at > utcnow()


def effective_permissions(own: list[str], creator_roles: list[str], book: RoleBook) -> list[str]:
    """A credential's own permissions intersected with what its creator's roles grant now (the
    role definitions as stored, crm_gateway.identity.roles)."""
    expanded = expand_permissions(own)
    if "admin" in expanded:  # admin stands for every permission: what the creator keeps of it stays
        expanded = frozenset(PERMISSIONS)
    return sorted(expanded & book.permissions_for(creator_roles))
