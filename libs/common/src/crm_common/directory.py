"""The directory of users and teams every service keeps from the gateway's `user.*` and `team.*`
events, for names on list rows and for checking that an assignee exists and is active, without
calling the gateway on the write path.

Events carry the whole user (or team) and its version; an older version than the one stored is
ignored, so delivery order does not matter.
"""

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.contracts.identity import TeamData, UserData
from crm_common.db import insert_for
from crm_common.errors import FieldError, ProblemError
from crm_common.events.envelope import CloudEvent
from crm_common.models import JSONType, UtcDateTime

# The owner of what no person did: a system note, a record created from an event that names no
# acting user (an integration's). No user has this id; lists show it under this name.
SYSTEM_USER_ID = uuid.UUID(int=0)
SYSTEM_USER_NAME = "System"

metadata = sa.MetaData()

users = sa.Table(
    "directory_users",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("roles", JSONType, nullable=False),
    sa.Column("is_active", sa.Boolean(), nullable=False),
    sa.Column("time_zone", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"),
)

teams = sa.Table(
    "directory_teams",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("manager_id", sa.Uuid()),
    sa.Column("member_ids", JSONType, nullable=False),
    sa.Column("is_active", sa.Boolean(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)


def create_directory_tables_v1() -> None:
    """For a service's migration. A frozen snapshot: later changes get their own `_v2`."""
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "directory_users",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("roles", json_type, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "directory_teams",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("manager_id", sa.Uuid()),
        sa.Column("member_ids", json_type, nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_directory_tables_v1() -> None:
    op.drop_table("directory_teams")
    op.drop_table("directory_users")


def add_directory_token_version_v2() -> None:
    """For a service's migration: the users' token version (tokens below it are refused)."""
    with op.batch_alter_table("directory_users") as batch:
        batch.add_column(sa.Column("token_version", sa.Integer(), nullable=False, server_default="0"))


def drop_directory_token_version_v2() -> None:
    with op.batch_alter_table("directory_users") as batch:
        batch.drop_column("token_version")


async def _upsert_newer(session: AsyncSession, table: sa.Table, values: dict[str, Any]) -> None:
    stmt = insert_for(session, table).values(**values)
    update = {k: stmt.excluded[k] for k in values if k != "id"}
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_=update, where=table.c.version < stmt.excluded.version
        )
    )


async def on_user_event(session: AsyncSession, event: CloudEvent) -> None:
    user = UserData.model_validate(event.data)
    await _upsert_newer(
        session,
        users,
        {
            "id": user.user_id,
            "email": user.email,
            "full_name": user.full_name,
            "roles": user.roles,
            "is_active": user.is_active,
            "time_zone": user.time_zone,
            "token_version": user.token_version,
            "version": event.sequence or 0,
            "updated_at": datetime.now(UTC),
        },
    )


async def on_team_event(session: AsyncSession, event: CloudEvent) -> None:
    team = TeamData.model_validate(event.data)
    await _upsert_newer(
        session,
        teams,
        {
            "id": team.team_id,
            "name": team.name,
            "type": team.type,
            "manager_id": team.manager_id,
            "member_ids": [str(m) for m in team.member_ids],
            "is_active": team.is_active,
            "version": event.sequence or 0,
            "updated_at": datetime.now(UTC),
        },
    )


HANDLERS = {
    "user.created": on_user_event,
    "user.updated": on_user_event,
    "team.created": on_team_event,
    "team.updated": on_team_event,
}


async def user_names(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Names of the given users, for list rows; unknown ids are simply absent."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(sa.select(users.c.id, users.c.full_name).where(users.c.id.in_(wanted)))
    return {row.id: row.full_name for row in rows}


async def session_state(session: AsyncSession, user_id: uuid.UUID) -> tuple[int, bool] | None:
    """(token version, active) of a user this directory knows, for refusing revoked tokens."""
    row = (
        await session.execute(
            sa.select(users.c.token_version, users.c.is_active).where(users.c.id == user_id)
        )
    ).first()
    return None if row is None else (row.token_version, row.is_active)


async def require_active_user(session: AsyncSession, user_id: uuid.UUID, *, field: str) -> None:
    row = (await session.execute(sa.select(users.c.is_active).where(users.c.id == user_id))).first()
    if row is None or not row.is_active:
        raise ProblemError(
            422,
            "UNKNOWN_USER",
            f"User {user_id} does not exist or is not active.",
            errors=[FieldError(field=field, message="unknown or inactive user", code="unknown_user")],
        )


async def require_active_team(session: AsyncSession, team_id: uuid.UUID, *, field: str) -> None:
    row = (await session.execute(sa.select(teams.c.is_active).where(teams.c.id == team_id))).first()
    if row is None or not row.is_active:
        raise ProblemError(
            422,
            "UNKNOWN_TEAM",
            f"Team {team_id} does not exist or is not active.",
            errors=[FieldError(field=field, message="unknown or inactive team", code="unknown_team")],
        )
