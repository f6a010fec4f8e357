"""SLA policies: validation, revisions, and which policy a new ticket runs on."""

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_common.concurrency import check_version
from crm_common.errors import FieldError, not_found
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import SlaPolicy, SlaRevision
from ticket_svc.schemas import SlaPolicyCreateRequest, SlaPolicyUpdateRequest
from ticket_svc.service import sla
from ticket_svc.service.businesstime import DAYS, BusinessCalendar, parse_hhmm
from ticket_svc.service.errors import InvalidBusinessHours, InvalidSlaTargets, InvalidTimeZone


@dataclass(frozen=True)
class SlaTerms:
    """What a ticket's SLA runs on: one immutable policy revision (or none)."""

    policy_id: uuid.UUID | None
    revision_id: uuid.UUID | None
    calendar: BusinessCalendar
    pause_statuses: frozenset[str]
    # ticket priority -> (first response minutes, resolution minutes)
    targets: dict[str, tuple[int, int]]

    def target(self, priority: str) -> tuple[int, int] | None:
        return self.targets.get(priority)


# Tickets without a policy: no targets; their times are measured in wall-clock time.
NO_SLA = SlaTerms(None, None, BusinessCalendar.always_open(), sla.DEFAULT_PAUSE_STATUSES, {})


def calendar_of(data: dict) -> BusinessCalendar:
    return BusinessCalendar.from_hours(
        data["timeZone"],
        [(h["day"], h["start"], h["end"]) for h in data["businessHours"]],
        [date.fromisoformat(d) for d in data["holidays"]],
    )


def terms_from_snapshot(revision_id: uuid.UUID, snapshot: dict) -> SlaTerms:
    return SlaTerms(
        policy_id=uuid.UUID(snapshot["policyId"]),
        revision_id=revision_id,
        calendar=calendar_of(snapshot),
        pause_statuses=frozenset(snapshot["pauseStatuses"]),
        targets={
            t["priority"]: (t["firstResponseMinutes"], t["resolutionMinutes"]) for t in snapshot["targets"]
        },
    )


class _TermsCache:
    """Revisions never change, so their parsed terms are cached per process."""

    def __init__(self, size: int = 256):
        self.size = size
        self.items: OrderedDict[uuid.UUID, SlaTerms] = OrderedDict()

    def get(self, key: uuid.UUID) -> SlaTerms | None:
        found = self.items.get(key)
        if found is not None:
            self.items.move_to_end(key)
        return found

    def put(self, key: uuid.UUID, terms: SlaTerms) -> None:
        self.items[key] = terms
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


_cache = _TermsCache()


async def terms_for(session: AsyncSession, revision_id: uuid.UUID | None) -> SlaTerms:
    if revision_id is None:
        return NO_SLA
    found = _cache.get(revision_id)
    if found is None:
        revision = await session.get(SlaRevision, revision_id)
        if revision is None:  # pragma: no cover - a foreign key guards this
            return NO_SLA
        found = terms_from_snapshot(revision.id, revision.snapshot)
        _cache.put(revision_id, found)
    return found


# --- validation -----------------------------------------------------------------------------------


# Checked in this order; the problem's code names the first kind found, `errors` lists every one,
# so a client fixes a policy in one round trip.
_PROBLEMS = {
    "timeZone": (InvalidTimeZone, "The time zone is not an IANA time zone (e.g. Europe/Berlin)."),
    "businessHours": (InvalidBusinessHours, "The business hours are impossible or overlap."),
    "targets": (InvalidSlaTargets, "The SLA targets are inconsistent."),
}


def _time_zone_errors(values: dict) -> list[FieldError]:
    try:
        ZoneInfo(values["timeZone"])
    except (ZoneInfoNotFoundError, ValueError):
        message = f"{values['timeZone']!r} is not an IANA time zone"
        return [FieldError(field="timeZone", message=message, code="invalid_time_zone")]
    return []


def _hours_errors(values: dict) -> list[FieldError]:
    errors: list[FieldError] = []
    parsed: list[tuple[int, str, int, int]] = []
    for i, h in enumerate(values["businessHours"]):
        try:
            start = parse_hhmm(h["start"])
            if start == 1440:
                raise ValueError("24:00 can only end a day")
        except ValueError as exc:
            errors.append(FieldError(field=f"businessHours.{i}.start", message=str(exc), code="invalid_time"))
            continue
        try:
            end = parse_hhmm(h["end"])
        except ValueError as exc:
            errors.append(FieldError(field=f"businessHours.{i}.end", message=str(exc), code="invalid_time"))
            continue
        if end <= start:
            errors.append(
                FieldError(
                    field=f"businessHours.{i}", message="end must be after start", code="end_before_start"
                )
            )
            continue
        parsed.append((i, h["day"], start, end))
    for day in DAYS:
        latest: tuple[int, int] | None = None  # (end, index) of the interval reaching furthest
        for start, end, i in sorted((s, e, i) for i, d, s, e in parsed if d == day):
            if latest is not None and start < latest[0]:
                errors.append(
                    FieldError(
                        field=f"businessHours.{i}",
                        message=f"overlaps businessHours.{latest[1]} on {day}",
                        code="overlap",
                    )
                )
            if latest is None or end > latest[0]:
                latest = (end, i)
    return errors


def _target_errors(values: dict) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, t in enumerate(values["targets"]):
        if t["priority"] in seen:
            errors.append(
                FieldError(field=f"targets.{i}.priority", message="one target per priority", code="duplicate")
            )
        seen.add(t["priority"])
        if t["resolutionMinutes"] < t["firstResponseMinutes"]:
            errors.append(
                FieldError(
                    field=f"targets.{i}.resolutionMinutes",
                    message="the resolution target cannot be shorter than the first-response target",
                    code="resolution_before_response",
                )
            )
    return errors


def validate_policy(values: dict) -> None:
    """Semantic checks on a policy's (camelCase) data: one 422 problem listing every error."""
    errors = [*_time_zone_errors(values), *_hours_errors(values), *_target_errors(values)]
    if errors:
        kind, detail = _PROBLEMS[errors[0].field.split(".")[0]]
        raise kind(f"{detail} See `errors` for every problem found.", errors=errors)


def _normalised(values: dict) -> dict:
    values["holidays"] = sorted({str(d) for d in values["holidays"]})
    values["pauseStatuses"] = sorted(set(values["pauseStatuses"]))
    values["businessHours"] = sorted(
        values["businessHours"], key=lambda h: (DAYS.index(h["day"]), h["start"])
    )
    return values


def _snapshot(policy: SlaPolicy) -> dict:
    return {
        "policyId": str(policy.id),
        "name": policy.name,
        "timeZone": policy.time_zone,
        "businessHours": policy.business_hours,
        "holidays": policy.holidays,
        "pauseStatuses": policy.pause_statuses,
        "targets": policy.targets,
    }


def _columns(values: dict) -> dict:
    return {
        "name": values["name"],
        "description": values.get("description"),
        "is_active": values["isActive"],
        "team_id": uuid.UUID(values["teamId"]) if values.get("teamId") else None,
        "customer_priority": values.get("customerPriority"),
        "targets": values["targets"],
        "time_zone": values["timeZone"],
        "business_hours": values["businessHours"],
        "holidays": values["holidays"],
        "pause_statuses": values["pauseStatuses"],
    }


def _new_revision(session: AsyncSession, policy: SlaPolicy, version: int, now: datetime) -> None:
    """Snapshot the policy as it is about to be written at `version`."""
    revision = SlaRevision(
        policy_id=policy.id, policy_version=version, snapshot=_snapshot(policy), created_at=now
    )
    session.add(revision)
    policy.revision_id = revision.id


# --- operations -----------------------------------------------------------------------------------


async def create_policy(
    session: AsyncSession, *, data: SlaPolicyCreateRequest, actor_id: uuid.UUID, now: datetime
) -> SlaPolicy:
    values = data.model_dump(mode="json", by_alias=True)
    validate_policy(values)  # before sorting, so field errors name the request's indexes
    values = _normalised(values)
    policy = SlaPolicy(
        **_columns(values), revision_id=uuid.uuid4(), created_by_id=actor_id, created_at=now, updated_at=now
    )
    _new_revision(session, policy, 1, now)
    session.add(policy)
    await session.flush()
    return policy


async def get_policy(session: AsyncSession, policy_id: uuid.UUID, *, for_update: bool = False) -> SlaPolicy:
    query = select(SlaPolicy).where(SlaPolicy.id == policy_id).execution_options(populate_existing=True)
    if for_update:
        query = query.with_for_update()
    policy = (await session.execute(query)).scalar_one_or_none()
    if policy is None:
        raise not_found("sla_policy", policy_id)
    return policy


async def update_policy(
    session: AsyncSession,
    *,
    policy_id: uuid.UUID,
    data: SlaPolicyUpdateRequest,
    if_match: str | None,
    now: datetime,
) -> SlaPolicy:
    policy = await get_policy(session, policy_id, for_update=True)
    check_version(policy.version, if_match=if_match, body_version=data.version)
    current = {
        "name": policy.name,
        "description": policy.description,
        "isActive": policy.is_active,
        "teamId": str(policy.team_id) if policy.team_id else None,
        "customerPriority": policy.customer_priority,
        "targets": policy.targets,
        "timeZone": policy.time_zone,
        "businessHours": policy.business_hours,
        "holidays": policy.holidays,
        "pauseStatuses": policy.pause_statuses,
    }
    changes = data.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude={"version"})
    values = {**current, **changes}
    validate_policy(values)
    values = _normalised(values)
    columns = _columns(values)
    terms_changed = any(
        getattr(policy, k) != columns[k]
        for k in ("targets", "time_zone", "business_hours", "holidays", "pause_statuses")
    )
    for key, value in columns.items():
        setattr(policy, key, value)
    policy.updated_at = now
    if terms_changed:
        # Tickets created from now on run on the new revision; older ones keep theirs.
        _new_revision(session, policy, policy.version + 1, now)
    await session.flush()
    return policy


SORTABLE = {
    "name": SlaPolicy.name,
    "createdAt": SlaPolicy.created_at,
    "updatedAt": SlaPolicy.updated_at,
}


async def list_policies(
    session: AsyncSession, *, params: PageParams, is_active: bool | None, team_id: uuid.UUID | None
) -> tuple[list[SlaPolicy], int]:
    query = select(SlaPolicy)
    if is_active is not None:
        query = query.where(SlaPolicy.is_active == is_active)
    if team_id is not None:
        query = query.where(SlaPolicy.team_id == team_id)
    query = query.order_by(*order_by(params.sort, SORTABLE, [SlaPolicy.created_at, SlaPolicy.id]))
    return await paginate(session, query, params)


async def select_policy(
    session: AsyncSession, *, priority: str, team_id: uuid.UUID | None, customer_priority: str | None
) -> SlaPolicy | None:
    """The policy a new ticket runs on: among active policies with a target for its priority and a
    scope that fits (team, customer priority, or unscoped), the most specific one (team beats
    customer priority beats unscoped); the oldest wins a tie."""
    policies = (await session.execute(select(SlaPolicy).where(SlaPolicy.is_active.is_(True)))).scalars().all()
    best: tuple[int, datetime, str] | None = None
    chosen = None
    for policy in policies:
        if not any(t["priority"] == priority for t in policy.targets):
            continue
        if policy.team_id is not None and policy.team_id != team_id:
            continue
        if policy.customer_priority is not None and policy.customer_priority != customer_priority:
            continue
        rank = (2 if policy.team_id else 0) + (1 if policy.customer_priority else 0)
        key = (-rank, policy.created_at, str(policy.id))
        if best is None or key < best:
            best, chosen = key, policy
    return chosen
