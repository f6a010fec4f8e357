"""Record scopes: which records of a context a caller may read and change, as SQL.

A token carries its roles' scopes per context (`all`, `team`, `own`; see crm_common.auth.ROLE_SCOPES),
the service's directory (crm_common.directory, kept from the gateway's `team.*` events) says which
teams the caller belongs to and who else is in them. Every query of a scoped context goes through
`scope_clause`, so a record outside the caller's read scope is absent from lists, totals, exports and
actions alike, and a get answers 404 (no hint that it exists). A write needs the record to be
readable (else 404) and inside the write scope (else 403 `OUT_OF_SCOPE`).

    caller: ScopedCaller = Depends(scoped("customers"))
    query = select(Customer).where(scope_clause(caller, Customer.assigned_to_id, Customer.team_id))
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import directory
from crm_common.app import SessionDep
from crm_common.auth import DATA_CONTEXTS, Principal, require_access
from crm_common.errors import ProblemError

Access = Literal["read", "write"]
# Who owns a record: one user id, several (assignee and creator), or none.
Owners = uuid.UUID | Iterable[uuid.UUID | None] | None


@dataclass(frozen=True)
class RecordScope:
    level: str  # all | team | own
    user_id: uuid.UUID
    # Teams the caller is a member or the manager of, and every member of those (the caller too).
    team_ids: frozenset[uuid.UUID] = frozenset()
    member_ids: frozenset[uuid.UUID] = frozenset()

    def allows(self, owners: Owners, team_id: uuid.UUID | None = None) -> bool:
        """The same rule as `clause`, for a record already loaded (owners: one id or several)."""
        if self.level == "all":
            return True
        ids: set[uuid.UUID | None] = (
            {owners} if owners is None or isinstance(owners, uuid.UUID) else set(owners)
        )
        ids.discard(None)
        if self.level == "own":
            return self.user_id in ids
        return bool(ids & self.member_ids) or (team_id is not None and team_id in self.team_ids)

    def clause(
        self, owner_columns: Sequence[sa.ColumnElement[Any]], team_column: sa.ColumnElement[Any] | None = None
    ) -> sa.ColumnElement[bool]:
        if self.level == "all":
            return sa.true()
        if self.level == "own":
            return sa.or_(*(c == self.user_id for c in owner_columns))
        members = sorted(self.member_ids | {self.user_id})
        conditions = [c.in_(members) for c in owner_columns]
        if team_column is not None and self.team_ids:
            conditions.append(team_column.in_(sorted(self.team_ids)))
        return sa.or_(*conditions)


@dataclass(frozen=True)
class ScopedCaller:
    """The caller of a scoped context: who they are and their read and write scope there."""

    principal: Principal
    context: str
    read: RecordScope
    write: RecordScope

    @property
    def id(self) -> uuid.UUID:
        return self.principal.id

    @classmethod
    def unrestricted(cls, user_id: uuid.UUID, context: str) -> "ScopedCaller":
        """Every record in scope, acting as `user_id`: for a service's own work outside a request."""
        principal = Principal(user_id, "", "", (), frozenset({"admin"}))
        everything = RecordScope("all", user_id)
        return cls(principal, context, everything, everything)

    def can_write(self, owners: Owners, team_id: uuid.UUID | None = None) -> bool:
        return self.write.allows(owners, team_id)

    def check_write(self, owners: Owners, team_id: uuid.UUID | None = None) -> None:
        """403 when a record the caller can read is outside their write scope."""
        if not self.write.allows(owners, team_id):
            raise ProblemError(
                403,
                "OUT_OF_SCOPE",
                f"Your write scope in {self.context} is `{self.write.level}`: this record is not yours to "
                "change.",
                extra={"scope": self.write.level},
            )


def scope_clause(
    caller: ScopedCaller | RecordScope,
    owner_column: sa.ColumnElement[Any] | Sequence[sa.ColumnElement[Any]],
    team_column: sa.ColumnElement[Any] | None = None,
    *,
    access: Access = "read",
) -> sa.ColumnElement[bool]:
    """The WHERE condition for the records `caller` may read (or write): `own` = an owner column is
    the caller; `team` = an owner is a member of one of the caller's teams, or the record's team is
    one of them; `all` = no condition. `owner_column` may be several columns (assignee or creator)."""
    scope = caller if isinstance(caller, RecordScope) else (caller.read if access == "read" else caller.write)
    columns: list[Any] = list(owner_column) if isinstance(owner_column, list | tuple) else [owner_column]
    return scope.clause(columns, team_column)


async def teams_of(
    session: AsyncSession, user_id: uuid.UUID
) -> tuple[frozenset[uuid.UUID], frozenset[uuid.UUID]]:
    """(team ids, member ids) of the active teams `user_id` is a member or the manager of. Teams are
    few and `member_ids` is a JSON list, so they are read whole and matched here (the same on SQLite
    and Postgres)."""
    t = directory.teams
    rows = await session.execute(sa.select(t.c.id, t.c.manager_id, t.c.member_ids).where(t.c.is_active))
    me = str(user_id)
    team_ids: set[uuid.UUID] = set()
    member_ids = {user_id}
    for team_id, manager_id, members in rows:
        members = [str(m) for m in members or ()]
        if me in members or manager_id == user_id:
            team_ids.add(team_id)
            member_ids.update(uuid.UUID(m) for m in members)
            if manager_id is not None:
                member_ids.add(manager_id)
    return frozenset(team_ids), frozenset(member_ids)


async def resolve(session: AsyncSession | None, principal: Principal, context: str) -> ScopedCaller:
    read, write = principal.scope(context, "read"), principal.scope(context, "write")
    team_ids: frozenset[uuid.UUID] = frozenset()
    member_ids: frozenset[uuid.UUID] = frozenset()
    if "team" in (read, write):
        if session is None:
            raise RuntimeError(
                f"a team scope on {context} needs the request's session to read the caller's teams"
            )
        team_ids, member_ids = await teams_of(session, principal.id)
    return ScopedCaller(
        principal,
        context,
        RecordScope(read, principal.id, team_ids, member_ids),
        RecordScope(write, principal.id, team_ids, member_ids),
    )


def scoped(
    context: str, access: Access | None = None, *, own_transaction: bool = False
) -> Callable[..., Awaitable[ScopedCaller]]:
    """Dependency: the caller with their scopes in `context`, after the permission check of
    crm_common.auth.require_access (read for GET/HEAD, write otherwise, unless `access` says).

    The caller's teams are read with the request's own session (one connection per request: a
    second one per request could starve the pool under load). A route that holds no session and
    commits in several transactions of its own (the streamed import) passes `own_transaction`: the
    teams are then read in a short read-only transaction before it starts."""
    if context not in DATA_CONTEXTS:
        raise ValueError(f"unknown data context {context!r}")
    permission = require_access(context, access)

    def needs_teams(principal: Principal) -> bool:
        return "team" in (principal.scope(context, "read"), principal.scope(context, "write"))

    if own_transaction:

        async def resolve_alone(
            request: Request, principal: Annotated[Principal, Depends(permission)]
        ) -> ScopedCaller:
            if not needs_teams(principal):
                return await resolve(None, principal, context)
            async with request.app.state.runtime.db.reads() as session:
                return await resolve(session, principal, context)

        return resolve_alone

    async def resolve_caller(
        session: SessionDep, principal: Annotated[Principal, Depends(permission)]
    ) -> ScopedCaller:
        return await resolve(session if needs_teams(principal) else None, principal, context)

    return resolve_caller
