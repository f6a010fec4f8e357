"""Request and response models for users, teams and API keys."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from crm_common.auth import LEGACY_PERMISSIONS, PERMISSIONS, ROLE_PERMISSIONS
from crm_common.schemas import ApiModel, StrictApiModel
from pydantic import EmailStr, Field

if TYPE_CHECKING:  # built from the permission tables at run time, which a type checker cannot follow
    Role = str
    Permission = str
else:
    Role = Literal[tuple(ROLE_PERMISSIONS)]
    # The legacy names (`customer_access`, ...) are still accepted: each is read and write of its context.
    Permission = Literal[(*PERMISSIONS, *LEGACY_PERMISSIONS)]
TeamType = Literal["SALES", "MARKETING", "SUPPORT", "MANAGEMENT"]


class UserCreateRequest(StrictApiModel):
    email: EmailStr
    full_name: str = Field(min_length=1, max_length=200)
    password: str | None = Field(
        default=None,
        max_length=256,
        description="Unset: the user cannot sign in yet. The password rule: at least 10 characters, not "
        "one character repeated, not the user's email, not a common password (422 `WEAK_PASSWORD`).",
    )
    roles: list[Role] = Field(min_length=1)
    time_zone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Paris.")
    is_active: bool = True


class UserUpdateRequest(StrictApiModel):
    email: EmailStr | None = None
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    password: str | None = Field(
        default=None,
        max_length=256,
        description="Resets the password (the password rule applies) and signs the user out everywhere.",
    )
    roles: list[Role] | None = Field(default=None, min_length=1)
    time_zone: str | None = None
    is_active: bool | None = None
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")


class PasswordChangeRequest(StrictApiModel):
    current_password: str = Field(max_length=256)
    new_password: str = Field(
        max_length=256,
        description="At least 10 characters, not one character repeated, not your email, not a common "
        "password.",
    )


DIRECTORY_ONLY = "Null unless the caller is an admin or this user (others see the directory: names)."


class UserRead(ApiModel):
    id: uuid.UUID
    email: str | None = Field(description=DIRECTORY_ONLY)
    full_name: str
    roles: list[str] | None = Field(description=DIRECTORY_ONLY)
    permissions: list[str] | None = Field(description=DIRECTORY_ONLY)
    time_zone: str | None = Field(description=DIRECTORY_ONLY)
    is_active: bool
    team_ids: list[uuid.UUID] = []
    created_at: datetime
    updated_at: datetime
    version: int


class UserPage(ApiModel):
    items: list[UserRead]
    total: int
    page: int
    page_size: int


class TeamCreateRequest(StrictApiModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    type: TeamType
    manager_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] = []
    is_active: bool = True


class TeamUpdateRequest(StrictApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    type: TeamType | None = None
    manager_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] | None = Field(default=None, description="Replaces the members.")
    is_active: bool | None = None
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")


class TeamRead(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None
    type: str
    manager_id: uuid.UUID | None
    manager_name: str | None = None
    member_ids: list[uuid.UUID]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class TeamPage(ApiModel):
    items: list[TeamRead]
    total: int
    page: int
    page_size: int


class ApiKeyCreateRequest(StrictApiModel):
    name: str = Field(min_length=1, max_length=200)
    permissions: list[Permission] = Field(
        min_length=1,
        description="A subset of the creating admin's permissions. While the key lives it never does more "
        "than its creator currently may: its permissions are intersected with the creator's at every use.",
    )
    expires_at: datetime | None = Field(default=None, description="Optional; RFC 3339 with an offset.")


class ApiKeyRead(ApiModel):
    id: uuid.UUID
    name: str
    prefix: str
    permissions: list[str]
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret. Shown this once: only its hash is stored.")


ScopeLevel = Literal["all", "team", "own"]
DataContext = Literal["customers", "sales", "activities", "tickets", "campaigns"]


class ContextScope(StrictApiModel):
    read: ScopeLevel = Field(description="Which records a read sees: `all`, `team` or `own`.")
    write: ScopeLevel = Field(description="Which records a write may change; never wider than `read`.")


class RoleRead(ApiModel):
    name: str
    permissions: list[str]
    scopes: dict[DataContext, ContextScope] = Field(
        description="Record scope per data context: `own` = records assigned to (owned by) the caller; "
        "`team` = those and records whose team is one of the caller's teams or whose owner is a member "
        "of one; `all` = every record. A scope never grants a permission the role lacks."
    )
    updated_at: datetime
    version: int


class RoleUpdateRequest(StrictApiModel):
    permissions: list[Permission] = Field(min_length=1)
    scopes: dict[DataContext, ContextScope] = Field(description="Every data context, each read and write.")
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")
