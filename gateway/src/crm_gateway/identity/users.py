"""Users and teams: admin-managed, published as user.* / team.* events (sequence = version)."""

import uuid
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from crm_common.auth import Principal
from crm_common.concurrency import check_version
from crm_common.errors import FieldError, ProblemError, not_found
from crm_common.events.outbox import add_events
from crm_common.models import utcnow
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.events import team_event, user_event
from crm_gateway.identity.models import Team, TeamMember, User
from crm_gateway.identity.passwords import check_password
from crm_gateway.identity.roles import DEFAULT_BOOK, RoleBook, role_book
from crm_gateway.identity.schemas import (
    TeamCreateRequest,
    TeamRead,
    TeamUpdateRequest,
    UserCreateRequest,
    UserRead,
    UserUpdateRequest,
)
from crm_gateway.identity.service import hash_password

USER_SORT = {
    "fullName": User.full_name,
    "email": User.email,
    "createdAt": User.created_at,
    "updatedAt": User.updated_at,
}
TEAM_SORT = {"name": Team.name, "type": Team.type, "createdAt": Team.created_at}


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProblemError(
            422,
            "INVALID_TIME_ZONE",
            f"`{value}` is not an IANA time zone.",
            errors=[FieldError(field="timeZone", message="unknown time zone", code="invalid_time_zone")],
        ) from None
    return value


def _email_taken(email: str) -> ProblemError:
    return ProblemError(409, "USER_EMAIL_EXISTS", f"A user with email {email} already exists.")


async def _email_exists(session: AsyncSession, email: str, *, exclude: uuid.UUID | None = None) -> bool:
    query = select(User.id).where(func.lower(User.email) == email.lower())
    if exclude is not None:
        query = query.where(User.id != exclude)
    return (await session.execute(query)).first() is not None


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


async def team_ids_of(session: AsyncSession, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = {u: [] for u in user_ids}
    if user_ids:
        rows = await session.execute(
            select(TeamMember.user_id, TeamMember.team_id).where(TeamMember.user_id.in_(user_ids))
        )
        for user_id, team_id in rows:
            out[user_id].append(team_id)
    return out


def user_read(
    user: User, team_ids: list[uuid.UUID], *, full: bool = True, book: RoleBook = DEFAULT_BOOK
) -> UserRead:
    """`full=False` for a caller who is neither an admin nor this user: the directory entry only
    (name, active, teams), not the email, roles or permissions."""
    if not full:
        return UserRead(
            id=user.id,
            email=None,
            full_name=user.full_name,
            roles=None,
            permissions=None,
            time_zone=None,
            is_active=user.is_active,
            team_ids=sorted(team_ids),
            created_at=user.created_at,
            updated_at=user.updated_at,
            version=user.version,
        )
    return UserRead(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        roles=list(user.roles),
        permissions=sorted(book.permissions_for(user.roles)),
        time_zone=user.time_zone,
        is_active=user.is_active,
        team_ids=sorted(team_ids),
        created_at=user.created_at,
        updated_at=user.updated_at,
        version=user.version,
    )


async def list_users(
    session: AsyncSession,
    params: PageParams,
    *,
    q: str | None,
    role: str | None,
    active: bool | None,
    viewer: Principal,
) -> tuple[list[UserRead], int]:
    admin = viewer.can("admin")
    if role and not admin:
        raise ProblemError(403, "FORBIDDEN", "Filtering users by role needs the `admin` permission.")
    query = select(User)
    if q:
        like = f"%{q.lower()}%"
        # Others may not probe emails through the search either.
        matches = [func.lower(User.full_name).like(like)]
        if admin:
            matches.append(func.lower(User.email).like(like))
        query = query.where(or_(*matches))
    if active is not None:
        query = query.where(User.is_active == active)
    if role:
        # roles is a small JSON list of known names (validated), none a substring of another in quotes:
        # matching its text form works the same on SQLite (JSON text) and Postgres (JSONB::text).
        query = query.where(sa.cast(User.roles, sa.Text).like(f'%"{role}"%'))
    query = query.order_by(*order_by(params.sort, USER_SORT, [User.full_name, User.id]))
    users, total = await paginate(session, query, params)
    teams = await team_ids_of(session, [u.id for u in users])
    book = await role_book(session)
    return [user_read(u, teams[u.id], full=admin or u.id == viewer.id, book=book) for u in users], total


async def _active_admins_besides(session: AsyncSession, user_id: uuid.UUID) -> int:
    users = (await session.execute(select(User).where(User.is_active, User.id != user_id))).scalars()
    return sum(1 for u in users if "admin" in u.roles)


def check_new_user(data: UserCreateRequest) -> None:
    """What refuses a new user before any hashing or database work (422s)."""
    _time_zone(data.time_zone)
    if data.password:
        check_password(data.password, email=data.email, field="password")


async def create_user(session: AsyncSession, data: UserCreateRequest, *, password_hash: str | None) -> User:
    """`password_hash`: of `data.password`, made by the caller before the transaction began (argon2
    takes tens of ms, and on SQLite a write transaction holds the one writer lock meanwhile)."""
    check_new_user(data)
    if bool(data.password) != bool(password_hash):
        raise ValueError("password_hash must be the hash of data.password")
    if await _email_exists(session, data.email):
        raise _email_taken(data.email)
    user = User(
        email=data.email,
        full_name=data.full_name,
        password_hash=password_hash,
        roles=list(dict.fromkeys(data.roles)),
        time_zone=data.time_zone,
        is_active=data.is_active,
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:  # a concurrent create with the same email won the unique index
        raise _email_taken(data.email) from None
    await add_events(session, user_event(user, created=True, book=await role_book(session)))
    return user


async def update_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    data: UserUpdateRequest,
    if_match: str | None,
    password_hash: str | None = None,
) -> User:
    """`password_hash`: of `data.password`, made before the transaction began (else it is made here)."""
    user = await get_user(session, user_id)
    check_version(user.version, if_match=if_match, body_version=data.version)
    fields = data.model_dump(exclude_unset=True, exclude={"version"})
    for name in ("email", "full_name", "roles", "time_zone", "is_active"):
        if name in fields and fields[name] is None:
            raise ProblemError(
                422,
                "VALIDATION_ERROR",
                f"`{name}` cannot be null.",
                errors=[FieldError(field=name, message="null", code="null")],
            )
    if "time_zone" in fields:
        _time_zone(fields["time_zone"])
    if "email" in fields and await _email_exists(session, fields["email"], exclude=user.id):
        raise _email_taken(fields["email"])
    loses_admin = ("roles" in fields and "admin" not in fields["roles"]) or fields.get("is_active") is False
    if "admin" in user.roles and user.is_active and loses_admin:
        if await _active_admins_besides(session, user.id) == 0:
            raise ProblemError(409, "LAST_ADMIN", "This is the last active admin; keep at least one.")
    # Deactivating, removing a role or resetting the password revokes the user's live tokens.
    revokes = (
        fields.get("is_active") is False
        or ("roles" in fields and not set(user.roles) <= set(fields["roles"]))
        or "password" in fields
    )
    if "password" in fields:
        password = fields.pop("password")
        if password:
            check_password(password, email=fields.get("email", user.email), field="password")
        user.password_hash = (password_hash or await hash_password(password)) if password else None
    if revokes:
        user.token_version += 1
    for name, value in fields.items():
        setattr(user, name, list(dict.fromkeys(value)) if name == "roles" else value)
    user.updated_at = utcnow()
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise _email_taken(fields.get("email", user.email)) from None
    await add_events(session, user_event(user, created=False, book=await role_book(session)))
    return user


# --- teams ----------------------------------------------------------------------------------------


async def get_team(session: AsyncSession, team_id: uuid.UUID) -> Team:
    team = await session.get(Team, team_id)
    if team is None:
        raise not_found("team", team_id)
    return team


async def _members(session: AsyncSession, team_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    out: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in team_ids}
    if team_ids:
        rows = await session.execute(
            select(TeamMember.team_id, TeamMember.user_id).where(TeamMember.team_id.in_(team_ids))
        )
        for team_id, user_id in rows:
            out[team_id].append(user_id)
    return out


async def _require_users(session: AsyncSession, ids: set[uuid.UUID], field: str) -> None:
    if not ids:
        return
    found = set((await session.execute(select(User.id).where(User.id.in_(ids)))).scalars())
    missing = sorted(str(i) for i in ids - found)
    if missing:
        raise ProblemError(
            422,
            "USER_NOT_FOUND",
            f"No user with id {', '.join(missing)}.",
            errors=[
                FieldError(field=field, message=f"unknown user {m}", code="user_not_found") for m in missing
            ],
        )


async def _name_exists(session: AsyncSession, name: str, exclude: uuid.UUID | None = None) -> bool:
    query = select(Team.id).where(func.lower(Team.name) == name.lower())
    if exclude is not None:
        query = query.where(Team.id != exclude)
    return (await session.execute(query)).first() is not None


def _name_taken(name: str) -> ProblemError:
    return ProblemError(409, "TEAM_NAME_EXISTS", f"A team named {name} already exists.")


async def team_reads(session: AsyncSession, teams: list[Team]) -> list[TeamRead]:
    members = await _members(session, [t.id for t in teams])
    manager_ids = {t.manager_id for t in teams if t.manager_id}
    names: dict[uuid.UUID | None, str] = {}
    if manager_ids:
        names = dict(
            (await session.execute(select(User.id, User.full_name).where(User.id.in_(manager_ids)))).all()
        )
    return [
        TeamRead(
            id=t.id,
            name=t.name,
            description=t.description,
            type=t.type,
            manager_id=t.manager_id,
            manager_name=names.get(t.manager_id),
            member_ids=sorted(members[t.id]),
            is_active=t.is_active,
            created_at=t.created_at,
            updated_at=t.updated_at,
            version=t.version,
        )
        for t in teams
    ]


async def list_teams(
    session: AsyncSession,
    params: PageParams,
    *,
    type: str | None,
    active: bool | None,
    member_id: uuid.UUID | None,
) -> tuple[list[TeamRead], int]:
    query = select(Team)
    if type:
        query = query.where(Team.type == type)
    if active is not None:
        query = query.where(Team.is_active == active)
    if member_id is not None:
        query = query.where(Team.id.in_(select(TeamMember.team_id).where(TeamMember.user_id == member_id)))
    query = query.order_by(*order_by(params.sort, TEAM_SORT, [Team.name, Team.id]))
    teams, total = await paginate(session, query, params)
    return await team_reads(session, teams), total


async def _save_team(
    session: AsyncSession, team: Team, member_ids: list[uuid.UUID] | None, *, created: bool
) -> None:
    try:
        async with session.begin_nested():
            session.add(team)
            await session.flush()
            if member_ids is not None:
                await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
                session.add_all([TeamMember(team_id=team.id, user_id=u) for u in member_ids])
                await session.flush()
    except IntegrityError:
        raise _name_taken(team.name) from None
    members = (await _members(session, [team.id]))[team.id]
    await add_events(session, team_event(team, members, created=created))


async def create_team(session: AsyncSession, data: TeamCreateRequest) -> Team:
    member_ids = list(dict.fromkeys(data.member_ids))
    await _require_users(session, {data.manager_id} if data.manager_id else set(), "managerId")
    await _require_users(session, set(member_ids), "memberIds")
    if await _name_exists(session, data.name):
        raise _name_taken(data.name)
    team = Team(
        name=data.name,
        description=data.description,
        type=data.type,
        manager_id=data.manager_id,
        is_active=data.is_active,
    )
    await _save_team(session, team, member_ids, created=True)
    return team


async def update_team(
    session: AsyncSession, *, team_id: uuid.UUID, data: TeamUpdateRequest, if_match: str | None
) -> Team:
    team = await get_team(session, team_id)
    check_version(team.version, if_match=if_match, body_version=data.version)
    fields = data.model_dump(exclude_unset=True, exclude={"version"})
    for name in ("name", "type", "is_active", "member_ids"):
        if name in fields and fields[name] is None:
            raise ProblemError(
                422,
                "VALIDATION_ERROR",
                f"`{name}` cannot be null.",
                errors=[FieldError(field=name, message="null", code="null")],
            )
    if fields.get("manager_id"):
        await _require_users(session, {fields["manager_id"]}, "managerId")
    member_ids = None
    if "member_ids" in fields:
        member_ids = list(dict.fromkeys(fields.pop("member_ids")))
        await _require_users(session, set(member_ids), "memberIds")
    if "name" in fields and await _name_exists(session, fields["name"], exclude=team.id):
        raise _name_taken(fields["name"])
    for name, value in fields.items():
        setattr(team, name, value)
    # Always dirty (even for a members-only change), so the flush bumps the version and the
    # event's sequence moves on.
    team.updated_at = utcnow()
    await _save_team(session, team, member_ids, created=False)
    return team
