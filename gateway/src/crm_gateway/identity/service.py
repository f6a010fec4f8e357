"""Users: bootstrap admin and password authentication."""

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from crm_common.db import Database
from crm_common.errors import FieldError, ProblemError
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from crm_gateway.identity.events import user_event
from crm_gateway.identity.login import PasswordWork
from crm_gateway.identity.models import User
from crm_gateway.identity.passwords import check_password, password_problems
from crm_gateway.identity.roles import role_book

log = logging.getLogger("crm.gateway.identity")
hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = hasher.hash(secrets.token_hex(16))


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow; keep it off the event loop.
    return await asyncio.to_thread(hasher.hash, password)


async def hash_with(work: PasswordWork, password: str) -> str:
    """A hash made within the sign-ins' bounded argon2 work (crm_gateway.identity.login). Call it
    before opening a write transaction, never inside one."""
    return await work.run(hasher.hash, password)


class AdminPasswordRefused(RuntimeError):
    """The bootstrap admin's password (CRM_ADMIN_PASSWORD) fails the password rule: the gateway does
    not start, rather than create an admin anyone could guess."""


async def bootstrap_admin(session: AsyncSession, *, email: str, password: str | None) -> str | None:
    """On first start (no users yet) create the admin. Returns the password if it was generated.
    A chosen password follows the same rule as every other (AdminPasswordRefused otherwise).

    Later starts change nothing; a CRM_ADMIN_PASSWORD that no longer opens the admin's account is
    said in the log (the admin changed it, or the setting did), with the way to reset it."""
    if (await session.execute(select(func.count()).select_from(User))).scalar_one() > 0:
        if password:
            await _warn_if_admin_password_differs(session, email, password)
        return None
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(18)
    elif problems := password_problems(password, email=email):
        raise AdminPasswordRefused(
            f"CRM_ADMIN_PASSWORD is refused by the password rule ({'; '.join(problems)}). Choose another: "
            "at least 10 characters, not one character repeated, not the admin's email, not a common "
            "password (docs/api-guide.md, 'Sessions, keys and passwords'); or leave it unset and one is "
            "generated and printed on this first start. No admin was created."
        )
    admin = User(
        email=email, full_name="Administrator", password_hash=await hash_password(password), roles=["admin"]
    )
    try:
        # Two replicas starting on an empty database race here; the unique email index decides.
        async with session.begin_nested():
            session.add(admin)
            await session.flush()
            await add_events(session, user_event(admin, created=True, book=await role_book(session)))
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
    user.token_version += 1  # a reset signs the user out everywhere, like any password change
    user.updated_at = datetime.now(UTC)
    await session.flush()
    await add_events(session, user_event(user, created=False, book=await role_book(session)))
    return True


async def session_state(state: State, user_id: uuid.UUID) -> tuple[int, bool] | None:
    """(token version, active) of a user, for the gateway's own SessionGuard."""
    async with state.runtime.db.reads() as session:
        row = (
            await session.execute(select(User.token_version, User.is_active).where(User.id == user_id))
        ).first()
    return None if row is None else (row.token_version, row.is_active)


@dataclass(frozen=True)
class SignIn:
    """What a token is issued from (read in a transaction that is over before any hash is checked)."""

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    is_active: bool
    token_version: int
    password_hash: str | None


async def _sign_in(
    db: Database, *, email: str | None = None, user_id: uuid.UUID | None = None
) -> SignIn | None:
    query = select(
        User.id,
        User.email,
        User.full_name,
        User.roles,
        User.is_active,
        User.token_version,
        User.password_hash,
    )
    if user_id:
        query = query.where(User.id == user_id)
    elif email is not None:
        query = query.where(func.lower(User.email) == email.lower())
    else:
        raise TypeError("_sign_in needs an email or a user_id")
    async with db.transaction(read_only=True) as session:
        row = (await session.execute(query)).first()
    return None if row is None else SignIn(*row)


async def _verify(work: PasswordWork, stored: str | None, password: str) -> bool:
    try:
        await work.run(hasher.verify, stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return stored is not None


async def authenticate(db: Database, work: PasswordWork, *, email: str, password: str) -> SignIn | None:
    """The user if the password is right and they are active. No transaction is open while the hash
    is checked (on SQLite a write transaction would hold the one writer lock for ~50 ms per guess)."""
    user = await _sign_in(db, email=email)
    ok = await _verify(work, user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    return user


async def change_password(
    db: Database, work: PasswordWork, *, user_id: uuid.UUID, current: str, new: str
) -> SignIn:
    """The caller's own password: the current one must be right; the new one follows the rule. Raises
    the token version, so every token issued before (any device) stops working."""
    user = await _sign_in(db, user_id=user_id)
    if user is None or not user.is_active or not await _verify(work, user.password_hash, current):
        raise ProblemError(
            400,
            "INVALID_CURRENT_PASSWORD",
            "The current password is wrong.",
            errors=[FieldError(field="currentPassword", message="wrong password", code="invalid")],
        )
    check_password(new, email=user.email, field="newPassword")
    new_hash = await work.run(hasher.hash, new)
    async with db.transaction() as session:
        row = await session.get(User, user_id)
        if row is None or row.password_hash != user.password_hash:
            # Changed (or reset by an admin) while we were hashing: let the caller start again.
            raise ProblemError(409, "PASSWORD_CHANGED", "The password was changed meanwhile; sign in again.")
        row.password_hash = new_hash
        row.token_version += 1
        row.updated_at = utcnow()
        await session.flush()
        await add_events(session, user_event(row, created=False, book=await role_book(session)))
        return SignIn(
            row.id, row.email, row.full_name, list(row.roles), row.is_active, row.token_version, new_hash
        )
