"""API keys for integrations: shown once, stored as SHA-256, scoped, revocable.

The secret is `crm_` + 32 random bytes (urlsafe base64): 256 bits of entropy. Against a secret
that cannot be guessed a slow password hash adds nothing (nobody can brute-force 2^256 even at
SHA-256 speed), while an unsalted fast hash lets the gateway find the key with one indexed lookup
per request instead of an argon2 verification (~tens of ms) per request.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from crm_common.auth import Principal
from crm_common.errors import ProblemError, not_found
from crm_common.models import utcnow
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.credentials import (
    check_expiry,
    effective_permissions,
    grantable,
    hash_secret,
    usable,
)
from crm_gateway.identity.models import ApiKey, User
from crm_gateway.identity.roles import role_book
from crm_gateway.identity.schemas import ApiKeyCreateRequest

PREFIX = "crm_"


def hash_key(key: str) -> str:
    return hash_secret(key)


def looks_like_key(credential: str) -> bool:
    return credential.startswith(PREFIX)


async def create_key(
    session: AsyncSession, data: ApiKeyCreateRequest, *, creator: Principal
) -> tuple[ApiKey, str]:
    permissions = grantable(data.permissions, creator=creator, kind="key")
    check_expiry(data.expires_at)
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=data.name,
        prefix=secret[:12],
        key_hash=hash_key(secret),
        permissions=permissions,
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
    # The creator's record scopes now: a key reads and writes the records its creator may.
    scopes: dict[str, list[str]] | None = None


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
    if not usable(revoked_at=key.revoked_at, expires_at=key.expires_at, creator_active=user.is_active):
        return None
    book = await role_book(session)
    return KeyIdentity(
        key.id,
        key.name,
        effective_permissions(key.permissions, user.roles, book),
        user.id,
        user.email,
        key.expires_at,
        user.token_version,
        book.scope_claim(user.roles),
    )


__all__ = ["create_key", "get_key", "list_keys", "looks_like_key", "not_found", "resolve", "revoke_key"]
