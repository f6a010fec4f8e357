"""Identity tables owned by the gateway (schema `identity`)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from crm_common.models import Field, SQLModel, id_field, json_field, new_registry, timestamp_field

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata

TEAM_TYPES = ("SALES", "MARKETING", "SUPPORT", "MANAGEMENT")

_user_version = sa.Column("version", sa.Integer(), nullable=False)


class User(Base, table=True):
    __tablename__ = "users"
    __table_args__ = (sa.Index("uq_users_email_lower", sa.func.lower(sa.text("email")), unique=True),)
    # The UPDATE carries `WHERE version = :seen`, so a write racing past the If-Match check is a 412.
    __mapper_args__ = {"version_id_col": _user_version}

    id: uuid.UUID = id_field()
    email: str = Field(sa_type=sa.String(320), nullable=False)
    full_name: str = Field(sa_type=sa.String(200), nullable=False)
    password_hash: str | None = Field(default=None, sa_type=sa.String(200))
    roles: list[str] = json_field(list)
    is_active: bool = Field(default=True, nullable=False)
    time_zone: str = Field(default="UTC", sa_type=sa.String(64), nullable=False)
    # The user's language (`en`, `zh`), set by themselves (PATCH /api/v1/me); None: their browser's.
    locale: str | None = Field(default=None, sa_type=sa.String(8))
    # Raised when the user is deactivated, loses a role or changes password: tokens carry it (`tv`)
    # and every service refuses one below the user's current value (crm_common.auth.SessionGuard).
    token_version: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    version: int = Field(default=None, sa_column=_user_version)


_team_version = sa.Column("version", sa.Integer(), nullable=False)


class Team(Base, table=True):
    __tablename__ = "teams"
    __table_args__ = (
        sa.Index("uq_teams_name_lower", sa.func.lower(sa.text("name")), unique=True),
        sa.Index("ix_teams_type", "type"),
        sa.Index("ix_teams_manager_id", "manager_id"),
        sa.Index("ix_teams_is_active", "is_active"),
    )
    __mapper_args__ = {"version_id_col": _team_version}

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(200), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.String(2000))
    type: str = Field(sa_type=sa.String(16), nullable=False)
    manager_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), foreign_key="users.id")
    is_active: bool = Field(default=True, nullable=False)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    version: int = Field(default=None, sa_column=_team_version)


class TeamMember(Base, table=True):
    """The seed's TeamMember (many-to-many between teams and users)."""

    __tablename__ = "team_members"
    __table_args__ = (sa.Index("ix_team_members_user_id", "user_id"),)

    team_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="teams.id", primary_key=True)
    user_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="users.id", primary_key=True)


class ApiKey(Base, table=True):
    """An integration credential. Only the SHA-256 of the secret is kept (see docs/api/gateway.md)."""

    __tablename__ = "api_keys"

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(200), nullable=False)
    # The first characters of the key, shown in lists so a person can tell keys apart.
    prefix: str = Field(sa_type=sa.String(16), nullable=False)
    key_hash: str = Field(sa_type=sa.String(64), nullable=False, unique=True)
    permissions: list[str] = json_field(list)
    created_by: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="users.id", nullable=False)
    created_at: datetime = timestamp_field()
    expires_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)


class OAuthClient(Base, table=True):
    """An OAuth2 client for the client credentials grant (RFC 6749 §4.4): a public `client_id` and a
    secret of which only the SHA-256 is kept, like an API key's."""

    __tablename__ = "oauth_clients"
    __table_args__ = (sa.Index("ix_oauth_clients_created_by", "created_by"),)

    id: uuid.UUID = id_field()
    client_id: str = Field(sa_type=sa.String(64), nullable=False, unique=True)
    name: str = Field(sa_type=sa.String(200), nullable=False)
    secret_hash: str = Field(sa_type=sa.String(64), nullable=False)
    permissions: list[str] = json_field(list)
    created_by: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="users.id", nullable=False)
    created_at: datetime = timestamp_field()
    expires_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)


class RefreshToken(Base, table=True):
    """A person's refresh token (password grant). Only its SHA-256 is kept. Each use marks it used and
    issues the next one of the same family; a used token presented again revokes the whole family
    (OAuth 2.0 Security BCP, refresh token rotation). `token_version` is the user's when the family
    began: a password change, deactivation or demotion (which raise the user's) ends the family."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (
        sa.Index("ix_refresh_tokens_family_id", "family_id"),
        sa.Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: uuid.UUID = id_field()
    token_hash: str = Field(sa_type=sa.String(64), nullable=False, unique=True)
    family_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    user_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="users.id", nullable=False)
    token_version: int = Field(nullable=False)
    created_at: datetime = timestamp_field()
    expires_at: datetime = timestamp_field()
    used_at: datetime | None = timestamp_field(nullable=True)
    revoked_at: datetime | None = timestamp_field(nullable=True)


_role_version = sa.Column("version", sa.Integer(), nullable=False)


class RoleDefinition(Base, table=True):
    """What a built-in role grants: its permissions and its record scope per data context
    (`{"customers": {"read": "team", "write": "own"}, ...}`). Seeded by a migration with the defaults
    of crm_common.auth; admins change them through `PUT /api/v1/roles/{name}`."""

    __tablename__ = "roles"
    __mapper_args__ = {"version_id_col": _role_version}

    name: str = Field(sa_type=sa.String(32), primary_key=True)
    permissions: list[str] = json_field(list)
    scopes: dict[str, Any] = json_field(dict)
    updated_at: datetime = timestamp_field()
    version: int = Field(default=None, sa_column=_role_version)
