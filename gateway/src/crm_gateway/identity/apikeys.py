"""API keys for integrations: shown once, stored as SHA-256, scoped, revocable.

The secret is `crm_` + 32 random bytes (urlsafe base64): 256 bits of entropy. Against a secret
that cannot be guessed a slow password hash adds nothing (nobody can brute-force 2^256 even at
SHA-256 speed), while an unsalted fast hash lets the gateway find the key with one indexed lookup
per request instead of an argon2 verification (~tens of ms) per request.
"""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from crm_common.auth import PERMISSIONS, Principal, expand_permissions, permissions_for
from crm_common.errors import FieldError, ProblemError, not_found
from crm_common.models import utcnow
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.models import ApiKey, User
from crm_gateway.identity.schemas import ApiKeyCreate

PREFIX = "crm_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


async def create_key(session: AsyncSession, data: ApiKeyCreate, *, creator: Principal) -> tuple[ApiKey, str]:
    wanted = set(expand_permissions(data.permissions))
    beyond = sorted(p for p in wanted if not creator.can(p))
    if beyond:
        raise ProblemError(
            422,
            "PERMISSION_NOT_HELD",
            f"A key cannot carry permissions its creator lacks: {', '.join(beyond)}.",
            errors=[
                FieldError(field="permissions", message=f"not held: {p}", code="not_held") for p in beyond
            ],
        )
    if data.expires_at is not None:
        if data.expires_at.tzinfo is None:
            raise ProblemError(
                422,
                "VALIDATION_ERROR",
                "`expiresAt` needs a time zone offset.",
                errors=[FieldError(field="expiresAt", message="naive datetime", code="naive_datetime")],
            )
        if data.expires_at <= utcnow():
            raise ProblemError(
                422,
                "VALIDATION_ERROR",
                "`expiresAt` is in the past.",
                errors=[FieldError(field="expiresAt", message="in the past", code="in_the_past")],
            )
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=data.name,
        prefix=secret[:12],
        key_hash=hash_key(secret),
        permissions=sorted(wanted),
        created_by=creator.id,
        expires_at=data.expires_at,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return list((await session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))).scalars())


async def get_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise ProblemError(404, "API_KEY_NOT_FOUND", f"API key {key_id} does not exist.")
    return key


async def revoke_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    key = await get_key(session, key_id)
    if key.revoked_at is None:  # revoking twice is fine and keeps the first time
        key.revoked_at = utcnow()
    return key


@dataclass(frozen=True)
class KeyIdentity:
    key_id: uuid.UUID
    name: str
    permissions: list[str]
    user_id: uuid.UUID
    email: str
    expires_at: datetime | None
    token_version: int = 0


async def resolve(session: AsyncSession, secret: str) -> KeyIdentity | None:
    """The key's identity if it is known, not revoked, not expired and its creator still active; its
    permissions are its own intersected with what its creator holds now (a demoted creator's key
    loses what the creator lost)."""
    row = (
        await session.execute(
            select(ApiKey, User)
            .join(User, User.id == ApiKey.created_by)
            .where(ApiKey.key_hash == hash_key(secret))
        )
    ).first()
    if row is None:
        return None
    key, user = row
    if key.revoked_at is not None or not user.is_active:
        return None
    if key.expires_at is not None and key.expires_at <= utcnow():
        return None
    own = expand_permissions(key.permissions)
    if "admin" in own:  # admin stands for every permission: what the creator keeps of it stays
        own = frozenset(PERMISSIONS)
    effective = own & permissions_for(user.roles)
    return KeyIdentity(
        key.id, key.name, sorted(effective), user.id, user.email, key.expires_at, user.token_version
    )


__all__ = ["create_key", "get_key", "list_keys", "looks_like_key", "not_found", "resolve", "revoke_key"]
