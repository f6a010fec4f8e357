"""Role definitions as data: each built-in role's permissions and record scopes (`roles` table).

Tokens carry what the caller's roles grant when they are issued: `perms` and the record scopes `scp`
(crm_common.auth). Why carry scopes in the token rather than have every service read role
definitions from the directory: a definition changes rarely, and the token version already reaches
every service within 5 s (SessionGuard, from the `user.updated` events they keep). A change here raises
the token version of every holder of the role, so their tokens are refused within 5 s and the next
sign-in carries the new definition; meanwhile a service answers from the token alone, with no second
replicated table whose lag would need its own guarantee and no lookup per request.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from crm_common.auth import (
    DATA_CONTEXTS,
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLE_SCOPES,
    SCOPE_LEVELS,
    Scopes,
    expand_permissions,
    scopes_for,
)
from crm_common.concurrency import check_version
from crm_common.db import Database
from crm_common.errors import FieldError, ProblemError
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.events import user_event
from crm_gateway.identity.models import RoleDefinition, User
from crm_gateway.identity.schemas import ContextScope, RoleRead, RoleUpdateRequest


@dataclass(frozen=True)
class RoleBook:
    """Every role's permissions and scopes as stored (the code's defaults for a role not stored)."""

    permissions: dict[str, frozenset[str]]
    scopes: dict[str, Scopes]

    def permissions_for(self, roles: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for role in roles:
            out |= self.permissions.get(role, frozenset())
        return frozenset(PERMISSIONS) if "admin" in out else frozenset(out)

    def scopes_for(self, roles: Iterable[str]) -> Scopes:
        return scopes_for(self.scopes[r] for r in roles if r in self.scopes)

    def read_scopes(self, roles: Iterable[str]) -> dict[str, str]:
        """Per data context the read scope, `none` where the roles grant no read permission (in
        `user.*` events, for webhook-svc)."""
        permissions, scopes = self.permissions_for(roles), self.scopes_for(roles)
        if "admin" in permissions:
            return dict.fromkeys(DATA_CONTEXTS, "all")
        return {c: scopes[c][0] if f"{c}:read" in permissions else "none" for c in DATA_CONTEXTS}

    def scope_claim(self, roles: Iterable[str]) -> dict[str, list[str]]:
        return {c: list(pair) for c, pair in self.scopes_for(roles).items()}


DEFAULT_BOOK = RoleBook(dict(ROLE_PERMISSIONS), {r: dict(s) for r, s in ROLE_SCOPES.items()})


def _scopes_of(row: RoleDefinition) -> Scopes:
    return {c: (row.scopes[c]["read"], row.scopes[c]["write"]) for c in DATA_CONTEXTS if c in row.scopes}


async def role_book(session: AsyncSession) -> RoleBook:
    rows = (await session.execute(select(RoleDefinition))).scalars().all()
    permissions, scopes = dict(DEFAULT_BOOK.permissions), dict(DEFAULT_BOOK.scopes)
    for row in rows:
        permissions[row.name] = expand_permissions(row.permissions)
        scopes[row.name] = _scopes_of(row)
    return RoleBook(permissions, scopes)


async def load_book(db: Database) -> RoleBook:
    async with db.transaction(read_only=True) as session:
        return await role_book(session)


def role_read(row: RoleDefinition) -> RoleRead:
    return RoleRead(
        name=row.name,
        permissions=sorted(row.permissions),
        scopes={c: ContextScope(read=r, write=w) for c, (r, w) in _scopes_of(row).items()},
        updated_at=row.updated_at,
        version=row.version,
    )


async def list_roles(session: AsyncSession) -> list[RoleDefinition]:
    return list((await session.execute(select(RoleDefinition).order_by(RoleDefinition.name))).scalars())


async def get_role(session: AsyncSession, name: str) -> RoleDefinition:
    row = await session.get(RoleDefinition, name)
    if row is None:
        raise ProblemError(404, "ROLE_NOT_FOUND", f"Role {name} does not exist.")
    return row


def _invalid(field: str, message: str, code: str) -> ProblemError:
    return ProblemError(
        422, "INVALID_ROLE", message, errors=[FieldError(field=field, message=message, code=code)]
    )


async def update_role(
    session: AsyncSession, *, name: str, data: RoleUpdateRequest, if_match: str | None
) -> RoleDefinition:
    """Replaces the role's permissions and scopes, and signs its holders out (their token version
    goes up, published in `user.updated`), so every service applies the new definition within 5 s."""
    row = await get_role(session, name)
    check_version(row.version, if_match=if_match, body_version=data.version)
    missing = [c for c in DATA_CONTEXTS if c not in data.scopes]
    if missing:
        raise _invalid(
            f"scopes.{missing[0]}",
            f"Every data context needs a scope; missing: {', '.join(missing)}.",
            "missing",
        )
    for context, pair in data.scopes.items():
        if SCOPE_LEVELS.index(pair.write) > SCOPE_LEVELS.index(pair.read):
            raise _invalid(
                f"scopes.{context}.write",
                f"The write scope of {context} ({pair.write}) is wider than its read scope ({pair.read}).",
                "wider_than_read",
            )
    permissions = sorted(expand_permissions(data.permissions))
    if name == "admin" and "admin" not in permissions:
        raise _invalid("permissions", "The admin role keeps the `admin` permission.", "admin_required")
    scopes: dict[str, Any] = {c: {"read": p.read, "write": p.write} for c, p in data.scopes.items()}
    if (permissions, scopes) == (sorted(row.permissions), row.scopes):
        return row
    row.permissions, row.scopes, row.updated_at = permissions, scopes, utcnow()
    await session.flush()
    await _sign_out_holders(session, name)
    return row


async def _sign_out_holders(session: AsyncSession, role: str) -> list[uuid.UUID]:
    book = await role_book(session)
    # roles is a small JSON list of known names: matching its text works on SQLite and Postgres alike.
    holders = (
        await session.execute(select(User).where(sa.cast(User.roles, sa.Text).like(f'%"{role}"%')))
    ).scalars()
    signed_out = []
    for user in holders:
        if role not in user.roles:
            continue
        user.token_version += 1
        user.updated_at = utcnow()
        await session.flush()
        await add_events(session, user_event(user, created=False, book=book))
        signed_out.append(user.id)
    return signed_out
