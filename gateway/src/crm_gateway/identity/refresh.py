"""Rotating refresh tokens for people (password grant), per the OAuth 2.0 Security BCP (RFC 9700
§4.14.2): every use answers a new refresh token and marks the old one used; a used token presented
again means two parties hold the family, so the whole family is revoked and both must sign in again.

A refresh token is `crmr_` + 256 random bits, kept as SHA-256 (like API keys: a secret that cannot
be guessed needs no slow hash). Each lasts `CRM_GATEWAY_REFRESH_TOKEN_TTL_SECONDS` from its issue.
A family also ends when its user's token version moves on (password change or reset, deactivation,
a role removed), or when the user signs out with one of its tokens.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from crm_common.db import affected
from crm_common.models import utcnow
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.credentials import hash_secret
from crm_gateway.identity.models import RefreshToken, User
from crm_gateway.identity.service import SignIn

PREFIX = "crmr_"


async def issue(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    token_version: int,
    ttl_seconds: int,
    family_id: uuid.UUID | None = None,
) -> str:
    """A new refresh token: the first of a new family, or the next of `family_id`."""
    now = utcnow()
    if family_id is None:
        # A new family is a sign-in: a good moment to drop what can no longer be used by anyone.
        await session.execute(delete(RefreshToken).where(RefreshToken.expires_at < now))
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            token_hash=hash_secret(secret),
            family_id=family_id or uuid.uuid4(),
            user_id=user_id,
            token_version=token_version,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await session.flush()
    return secret


@dataclass(frozen=True)
class Rotated:
    user: SignIn | None  # None: refused (see `reason`)
    refresh_token: str | None = None
    reason: str = ""


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def rotate(session: AsyncSession, secret: str, *, ttl_seconds: int) -> Rotated:
    """Spend `secret`: the user and the family's next refresh token, or a refusal. A refusal that
    revokes the family has written that when the caller's transaction commits: the caller commits
    either way."""
    row = (
        await session.execute(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(secret)))
    ).scalar_one_or_none()
    if row is None:
        return Rotated(None, reason="The refresh token is not known.")
    if row.revoked_at is not None:
        return Rotated(None, reason="The refresh token was revoked (signed out, or reused).")
    now = utcnow()
    if row.expires_at <= now:
        return Rotated(None, reason="The refresh token has expired; sign in again.")
    # Claim it: of two uses racing, one updates the row and the other sees it used (a reuse).
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None), RefreshToken.revoked_at.is_(None))
        .values(used_at=now)
    )
    if affected(claimed) != 1:
        await _revoke_family(session, row.family_id)
        return Rotated(
            None, reason="The refresh token was already used: every token of its sign-in is now revoked."
        )
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active or user.token_version != row.token_version:
        await _revoke_family(session, row.family_id)
        return Rotated(
            None, reason="The user's sign-ins were revoked (password changed, deactivated or demoted)."
        )
    next_secret = await issue(
        session,
        user_id=user.id,
        token_version=user.token_version,
        ttl_seconds=ttl_seconds,
        family_id=row.family_id,
    )
    signed_in = SignIn(
        user.id,
        user.email,
        user.full_name,
        list(user.roles),
        user.is_active,
        user.token_version,
        user.password_hash,
    )
    return Rotated(signed_in, next_secret)


async def sign_out(session: AsyncSession, secret: str) -> None:
    """Revoke the family of `secret` (nothing happens for an unknown one, RFC 7009 §2.2)."""
    family_id = (
        await session.execute(
            select(RefreshToken.family_id).where(RefreshToken.token_hash == hash_secret(secret))
        )
    ).scalar_one_or_none()
    if family_id is not None:
        await _revoke_family(session, family_id)
