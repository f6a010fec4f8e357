"""Record scopes on subscriptions: a subscription receives only events about records its creator may
read (crm_common.record_scope's rule: `all`, `team` or `own` per data context).

What decides, per event and subscription:
- the creator's read scope per context, captured from their token when they subscribed
  (`record_scopes`), narrowed by what the gateway's latest `user.*` event says they may read now
  (UserAccess: a demoted creator loses what they lost; a deactivated one receives nothing; a role
  widened later does not widen an existing subscription);
- the record's owners (assignee, owner, creator) and team: from the event when it carries them, else
  from RecordOwner, kept from the events that do;
- the creator's teams and their members: the directory (crm_common.directory), as every service.

Conservative: a scoped subscription does not receive an event whose record owner is not known; the
delivery log keeps it as SKIPPED with its reason. Events that are not about a record of a data context
(users, teams, webhooks) go to every subscription whose creator is active.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from crm_common.auth import DATA_CONTEXTS, SCOPE_LEVELS, Principal
from crm_common.contracts.catalogue import by_routing_key
from crm_common.contracts.identity import UserData
from crm_common.events.envelope import CloudEvent
from crm_common.events.inbox import Upsert
from crm_common.record_scope import RecordScope, teams_of
from sqlalchemy.ext.asyncio import AsyncSession

from webhook_svc.models import RecordOwner, UserAccess

CREATOR_INACTIVE = "CREATOR_INACTIVE"
NO_READ_PERMISSION = "NO_READ_PERMISSION"
OUT_OF_SCOPE = "OUT_OF_SCOPE"
RECORD_OWNER_UNKNOWN = "RECORD_OWNER_UNKNOWN"

NONE = "none"  # no read permission in the context
LEVELS = (NONE, *SCOPE_LEVELS)  # narrowest first

# The data context of each kind of record (the first word of its events' routing keys).
CONTEXT_OF = {
    "customer": "customers",
    "opportunity": "sales",
    "invoice": "sales",
    "activity": "activities",
    "ticket": "tickets",
    "campaign": "campaigns",
}

_contracts = by_routing_key()


def captured_scopes(principal: Principal) -> dict[str, str]:
    """What the subscriber may read, per data context, as their token says now."""
    return {c: principal.scope(c, "read") if principal.can(f"{c}:read") else NONE for c in DATA_CONTEXTS}


def narrower(a: str, b: str) -> str:
    return min(a, b, key=LEVELS.index)


@dataclass(frozen=True)
class Record:
    kind: str
    # None when the event does not name it (then its owner is unknown).
    record_id: uuid.UUID | None
    # From the event itself, when it carries them; None = look them up.
    owners: tuple[uuid.UUID, ...] | None = None
    team_id: uuid.UUID | None = None
    # Whose owners this record has when it names none itself (an invoice: its opportunity's, or its
    # customer's when it has no opportunity).
    via: "Record | None" = None

    @property
    def context(self) -> str:
        return CONTEXT_OF[self.kind]


def record_of(event: CloudEvent) -> Record | None:
    """The record an event is about, with the owners it carries; None when it is about none."""
    kind, _, action = event.routing_key.partition(".")
    if kind not in CONTEXT_OF:
        return None
    data = _contracts[event.routing_key].model_validate(event.data)
    if kind == "customer":
        if action == "merged":
            return _customer(data.primary_customer_id, data.primary_owner)
        if action == "assigned":
            return Record(kind, data.customer_id, _ids(data.assigned_to_id), data.team_id)
        if action == "created" and data.owner is None:  # published before `owner` existed
            return Record(kind, data.customer_id, _ids(data.assigned_to_id))
        return _customer(getattr(data, "customer_id", None), getattr(data, "owner", None))
    record_id = getattr(data, f"{kind}_id", None)
    if kind == "opportunity" and getattr(data, "owner_id", None):
        return Record(kind, record_id, _ids(data.owner_id))
    if kind == "invoice":
        opportunity_id = getattr(data, "opportunity_id", None)
        customer_id = getattr(data, "customer_id", None)
        via = (
            Record("opportunity", opportunity_id)
            if opportunity_id
            else Record("customer", customer_id)
            if customer_id
            else None
        )
        return Record(kind, record_id, via=via)
    if kind == "activity" and getattr(data, "owner_id", None):
        return Record(kind, record_id, _ids(data.owner_id))
    if kind == "ticket" and action == "created":
        return Record(kind, record_id, _ids(data.assigned_to_id, data.created_by))
    return Record(kind, record_id)  # look the owner up (campaign events carry none)


def _customer(customer_id: uuid.UUID | None, owner) -> Record:
    if owner is None:
        return Record("customer", customer_id)
    return Record("customer", customer_id, _ids(owner.assigned_to_id), owner.team_id)


def _ids(*ids: uuid.UUID | None) -> tuple[uuid.UUID, ...]:
    return tuple(i for i in ids if i is not None)


def _newest_owner(stmt, columns: tuple[str, ...]):
    return _keep_newest(stmt, columns, ["kind", "record_id"])


def _newest_access(stmt, columns: tuple[str, ...]):
    return _keep_newest(stmt, columns, ["user_id"])


def _keep_newest(stmt, columns: tuple[str, ...], key: list[str]):
    """The conflict rule of both tables: a row changes only from the same or a newer version."""
    return stmt.on_conflict_do_update(
        index_elements=key,
        set_={k: stmt.excluded[k] for k in columns if k not in key},
        where=stmt.table.c.version <= stmt.excluded.version,
    )


def _owner_upsert(record: Record, event: CloudEvent) -> Upsert:
    return Upsert(
        RecordOwner.__table__,
        {
            "kind": record.kind,
            "record_id": record.record_id,
            "owner_ids": [str(o) for o in record.owners or ()],
            "team_id": record.team_id,
            "version": event.sequence or 0,
            "updated_at": datetime.now(UTC),
        },
        _newest_owner,
    )


def keeping_owner(event: CloudEvent) -> Upsert | bool:
    """What an event still does here when no subscription wants it: keep the record owner it tells
    (a subscription made later needs the owner of a record created earlier). One row's upsert when
    it tells the owner itself; True when only through another record (the handler reads that one);
    False when it tells none."""
    record = record_of(event)
    if record is None or record.record_id is None:
        return False
    if record.owners is not None:
        return _owner_upsert(record, event)
    return record.via is not None


async def _stored(session: AsyncSession, kind: str, record_id: uuid.UUID) -> RecordOwner | None:
    return await session.get(RecordOwner, (kind, record_id))


async def resolve_owners(session: AsyncSession, event: CloudEvent) -> Record | None:
    """The event's record with its owners known if they can be (kept for the next events about it);
    owners None = unknown."""
    record = record_of(event)
    if record is None or record.record_id is None:
        return record
    if record.owners is None and record.via is not None and record.via.record_id is not None:
        source = await _stored(session, record.via.kind, record.via.record_id)
        if source is not None:
            owners = tuple(uuid.UUID(o) for o in source.owner_ids)
            record = Record(record.kind, record.record_id, owners, source.team_id)
    if record.owners is not None:
        await _owner_upsert(record, event).execute(session)
        return record
    stored = await _stored(session, record.kind, record.record_id)
    if stored is None:
        return record
    return Record(
        record.kind, record.record_id, tuple(uuid.UUID(o) for o in stored.owner_ids), stored.team_id
    )


async def on_user_event(session: AsyncSession, event: CloudEvent) -> None:
    """Keep what each user may read now (for their subscriptions), from `user.*` events."""
    user = UserData.model_validate(event.data)
    row = {
        "user_id": user.user_id,
        "read_scopes": user.read_scopes,
        "is_active": user.is_active,
        "version": event.sequence or 0,
        "updated_at": datetime.now(UTC),
    }
    await Upsert(UserAccess.__table__, row, _newest_access).execute(session)


class Audience:
    """Decides, for one event, which subscriptions may receive it (one instance per event: each
    creator's access and teams are read once)."""

    def __init__(self, session: AsyncSession, record: Record | None):
        self.session = session
        self.record = record
        self._access: dict[uuid.UUID, UserAccess | None] = {}
        self._teams: dict[uuid.UUID, tuple[frozenset, frozenset]] = {}

    async def skip_reason(self, creator_id: uuid.UUID, captured: dict | None) -> str | None:
        """None when the subscription gets the event, else why not."""
        if creator_id not in self._access:
            self._access[creator_id] = await self.session.get(UserAccess, creator_id)
        access = self._access[creator_id]
        if access is not None and not access.is_active:
            return CREATOR_INACTIVE
        record = self.record
        if record is None:
            return None
        context = record.context
        level = "all" if captured is None else captured.get(context, NONE)
        if access is not None and access.read_scopes is not None:
            level = narrower(level, access.read_scopes.get(context, NONE))
        if level == NONE:
            return NO_READ_PERMISSION
        if level == "all":
            return None
        if record.owners is None:
            return RECORD_OWNER_UNKNOWN
        team_ids = member_ids = frozenset()
        if level == "team":
            if creator_id not in self._teams:
                self._teams[creator_id] = await teams_of(self.session, creator_id)
            team_ids, member_ids = self._teams[creator_id]
        scope = RecordScope(level, creator_id, team_ids, member_ids)
        return None if scope.allows(record.owners, record.team_id) else OUT_OF_SCOPE
