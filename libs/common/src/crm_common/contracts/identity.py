"""Events published by the gateway about users and teams; services keep a directory from them."""

import uuid
from typing import ClassVar

from crm_common.contracts.base import EventData


class UserData(EventData):
    """The whole user as it is now (state transfer): a consumer can upsert it as it comes."""

    user_id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    is_active: bool
    time_zone: str = "UTC"
    # Raised by the gateway when the user is deactivated, loses a role or changes password: a token
    # carrying a lower `tv` claim is refused by every service (crm_common.auth.SessionGuard).
    token_version: int = 0
    # What the user may read now, per data context: their record scope there (`all`, `team`, `own`)
    # or `none` without the read permission. From the role definitions when the event was published
    # (a role change raises `token_version` and republishes its holders): webhook-svc narrows the
    # deliveries of the subscriptions the user made with it. Absent in events published before it.
    read_scopes: dict[str, str] | None = None


class UserCreated(UserData):
    event_type: ClassVar[str] = "user.created"


class UserUpdated(UserData):
    event_type: ClassVar[str] = "user.updated"


class TeamData(EventData):
    team_id: uuid.UUID
    name: str
    type: str
    manager_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] = []
    is_active: bool = True


class TeamCreated(TeamData):
    event_type: ClassVar[str] = "team.created"


class TeamUpdated(TeamData):
    event_type: ClassVar[str] = "team.updated"
