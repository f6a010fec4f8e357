"""Events the gateway publishes about users and teams (contracts in crm_common.contracts.identity)."""

import uuid
from typing import TYPE_CHECKING

from crm_common.contracts.identity import TeamCreated, TeamUpdated, UserCreated, UserUpdated
from crm_common.events.envelope import CloudEvent, event_from

from crm_gateway.identity.models import Team, User

if TYPE_CHECKING:
    from crm_gateway.identity.roles import RoleBook

SERVICE = "gateway"


def user_event(user: User, *, created: bool, book: "RoleBook") -> CloudEvent:
    payload_cls = UserCreated if created else UserUpdated
    payload = payload_cls(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        roles=list(user.roles),
        is_active=user.is_active,
        time_zone=user.time_zone,
        token_version=user.token_version,
        read_scopes=book.read_scopes(user.roles),
    )
    return event_from(payload, service=SERVICE, subject=user.id, sequence=user.version)


def team_event(team: Team, member_ids: list[uuid.UUID], *, created: bool) -> CloudEvent:
    payload_cls = TeamCreated if created else TeamUpdated
    payload = payload_cls(
        team_id=team.id,
        name=team.name,
        type=team.type,
        manager_id=team.manager_id,
        member_ids=sorted(member_ids),
        is_active=team.is_active,
    )
    return event_from(payload, service=SERVICE, subject=team.id, sequence=team.version)
