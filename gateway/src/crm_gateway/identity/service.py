"""Users: bootstrap admin and password authentication."""

import asyncio
import logging
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from crm_common.events.outbox import add_events
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.events import user_event
from crm_gateway.identity.models import User

log = logging.getLogger("crm.gateway.identity")
hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow; keep it off the event loop.
    return await asyncio.to_thread(hasher.hash, password)


async def bootstrap_admin(session: AsyncSession, *, email: str, password: str | None) -> str | None:
    """On first start (no users yet) create the admin. Returns the password if it was generated.

    Later starts change nothing; a CRM_ADMIN_PASSWORD that no longer opens the admin's account is
    said in the log (the admin changed it, or the setting did), with the way to reset it."""
    if (await session.execute(select(func.count()).select_from(User))).scalar_one() > 0:
        if password:
            await _warn_if_admin_password_differs(session, email, password)
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
    admin = User(
        email=email, full_name="Administrator", password_hash=await hash_password(password), roles=["admin"]
    )
    try:
        # Two replicas starting on an empty database race here; the unique email index decides.
        async with session.begin_nested():
            session.add(admin)
            await session.flush()
            await add_events(session, user_event(admin, created=True))
    except IntegrityError:
        return None
    return generated


async def _warn_if_admin_password_differs(session: AsyncSession, email: str, password: str) -> None:
    user = await _by_email(session, email)
    if user is None:
        log.warning(
            "CRM_ADMIN_EMAIL %s names no user: the admin settings are used only on the first start", email
        )
    elif not user.password_hash or not await _verifies(user.password_hash, password):
        log.warning(
            "CRM_ADMIN_PASSWORD differs from the password of %s, which stays as it is: the setting is "
            "used only when the first admin is created. To set it: crm admin reset-password %s",
            email,
            email,
        )


async def _by_email(session: AsyncSession, email: str) -> User | None:
    return (
        await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    ).scalar_one_or_none()


async def _verifies(stored: str, password: str) -> bool:
    try:
        return await asyncio.to_thread(hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def reset_password(session: AsyncSession, email: str, password: str) -> bool:
    """`crm admin reset-password`: a new password for the user; False if there is no such user."""
    user = await _by_email(session, email)
    if user is None:
        return False
    user.password_hash = await hash_password(password)
    user.updated_at = datetime.now(UTC)
    await session.flush()
    return True


async def authenticate(session: AsyncSession, *, email: str, password: str) -> User | None:
    user = (
        await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    ).scalar_one_or_none()
    stored = user.password_hash if user and user.password_hash else _DUMMY_HASH
    try:
        await asyncio.to_thread(hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active:
        return None
    return user
