"""Activities written by people: create, read, update, delete, status transitions, completion
(publishing `activity.completed`) and follow-up tasks."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from crm_common import changes
from crm_common.archive import ArchivedMode, archived_clause, check_not_archived
from crm_common.batch import check_external_id_free, external_id_conflict
from crm_common.concurrency import check_optional_version, check_version
from crm_common.errors import not_found
from crm_common.events.outbox import add_events
from crm_common.pagination import PageParams, order_by
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from sqlalchemy import Select, delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.events import publish
from activity_svc.models import (
    Activity,
    ActivityParticipant,
    ActivityStatus,
    ActivityType,
)
from activity_svc.schemas import (
    ActivityCancelRequest,
    ActivityCompleteRequest,
    ActivityCreateRequest,
    ActivityUpdateRequest,
)
from activity_svc.service.common import require_customer, require_known_users
from activity_svc.service.errors import (
    DurationMismatch,
    EndBeforeStart,
    InvalidInitialStatus,
    InvalidStatusTransition,
    SystemActivityReadOnly,
)

# Forward only: PLANNED -> IN_PROGRESS -> COMPLETED (a planned activity may be completed directly),
# and any open state -> CANCELLED. COMPLETED and CANCELLED are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    ActivityStatus.PLANNED: frozenset(
        {ActivityStatus.IN_PROGRESS, ActivityStatus.COMPLETED, ActivityStatus.CANCELLED}
    ),
    ActivityStatus.IN_PROGRESS: frozenset({ActivityStatus.COMPLETED, ActivityStatus.CANCELLED}),
    ActivityStatus.COMPLETED: frozenset(),
    ActivityStatus.CANCELLED: frozenset(),
}
INITIAL_STATUSES = frozenset({ActivityStatus.PLANNED, ActivityStatus.IN_PROGRESS, ActivityStatus.COMPLETED})

SORTABLE = {
    "startDate": Activity.start_date,
    "endDate": Activity.end_date,
    "createdAt": Activity.created_at,
    "updatedAt": Activity.updated_at,
    "priority": Activity.priority,
    "status": Activity.status,
    "type": Activity.type,
    "subject": Activity.subject,
}
DEFAULT_ORDER = [Activity.start_date.desc(), Activity.id.desc()]


def _minutes(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 60)


def schedule(
    start: datetime, end: datetime | None, duration: int | None
) -> tuple[datetime | None, int | None]:
    """(endDate, duration) from what the client gave: the end wins and the duration is derived from
    it (a different duration is refused); with a duration only, the end is derived."""
    if end is not None:
        if end < start:
            raise EndBeforeStart("endDate must not be before startDate.")
        derived = _minutes(start, end)
        if duration is not None and duration != derived:
            raise DurationMismatch(
                f"duration {duration} does not match startDate..endDate ({derived} minutes)."
            )
        return end, derived
    if duration is not None:
        return start + timedelta(minutes=duration), duration
    return None, None


async def _set_participants(session: AsyncSession, activity_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
    await session.execute(delete(ActivityParticipant).where(ActivityParticipant.activity_id == activity_id))
    for user_id in dict.fromkeys(ids):
        session.add(ActivityParticipant(activity_id=activity_id, user_id=user_id))


async def _check_owner(session: AsyncSession, owner_id: uuid.UUID, actor_id: uuid.UUID) -> None:
    # The caller is known (their token says so); anyone else must be in the directory.
    if owner_id != actor_id:
        await require_known_users(session, [owner_id], field="ownerId")


async def create_activity(
    session: AsyncSession,
    *,
    data: ActivityCreateRequest,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> tuple[Activity, Activity | None]:
    """The new activity and, when it is created COMPLETED with a followUpDate, its follow-up task."""
    if data.status not in INITIAL_STATUSES:
        raise InvalidInitialStatus("A new activity is PLANNED, IN_PROGRESS or COMPLETED.")
    end, duration = schedule(data.start_date, data.end_date, data.duration)
    owner_id = data.owner_id or actor_id
    if caller is not None:  # for someone else only inside the caller's write scope
        caller.check_write(owner_id)
    await _check_owner(session, owner_id, actor_id)
    await require_known_users(session, data.participant_ids, field="participantIds")
    await check_external_id_free(session, Activity, "activity", data.external_id)
    now = datetime.now(UTC)
    fields = data.model_dump(exclude={"participant_ids", "end_date", "duration", "owner_id", "customer_id"})
    activity = Activity(
        **fields,
        end_date=end,
        duration=duration,
        owner_id=owner_id,
        customer_id=await require_customer(session, data.customer_id),
        created_at=now,
        updated_at=now,
    )
    if activity.status == ActivityStatus.COMPLETED:
        activity.completed_at = now
    session.add(activity)
    await _flush(session, activity)
    await _set_participants(session, activity.id, data.participant_ids)
    follow_up = None
    if activity.status == ActivityStatus.COMPLETED:
        follow_up = await _after_completion(session, activity, now=now)
    await session.flush()
    return activity, follow_up


def in_scope(caller: ScopedCaller, access: Access = "read"):
    """The activities `caller` may read (or write): by owner (activities have no team)."""
    return scope_clause(caller, Activity.owner_id, access=access)


async def get_activity(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    caller: ScopedCaller | None = None,
    write: bool = False,
    archived_ok: bool = False,
) -> Activity:
    """404 when missing or outside `caller`'s read scope; with `write`, 403 outside the write scope
    and 409 `ARCHIVED` when archived (unless `archived_ok`: archive and restore)."""
    query = select(Activity).where(Activity.id == activity_id).execution_options(populate_existing=True)
    if caller is not None:
        query = query.where(in_scope(caller))
    activity = (await session.execute(query)).scalar_one_or_none()
    if activity is None:
        raise not_found("activity", activity_id)
    if write and caller is not None:
        caller.check_write(activity.owner_id)
    if write and not archived_ok:
        check_not_archived(activity, "activity")
    return activity


async def _editable(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    if_match: str | None,
    version: int | None,
    required: bool,
    caller: ScopedCaller | None = None,
    archived_ok: bool = False,
) -> Activity:
    activity = await get_activity(session, activity_id, caller=caller, write=True, archived_ok=archived_ok)
    if activity.system:
        raise SystemActivityReadOnly(
            "System notes are the record of business events and cannot be changed or deleted."
        )
    if required:
        check_version(activity.version, if_match=if_match, body_version=version)
    else:
        check_optional_version(activity.version, if_match=if_match, body_version=version)
    return activity


def _check_transition(activity: Activity, target: str) -> None:
    if target not in TRANSITIONS[activity.status]:
        raise InvalidStatusTransition(
            f"An activity cannot go from {activity.status} to {target}.",
            extra={"currentStatus": activity.status, "allowed": sorted(TRANSITIONS[activity.status])},
        )


async def _completed(session: AsyncSession, activity: Activity, *, now: datetime) -> Activity | None:
    """What completing does: stamp it, publish `activity.completed`, and create the follow-up TASK
    when a followUpDate is set."""
    activity.status = ActivityStatus.COMPLETED
    activity.completed_at = now
    activity.updated_at = now
    return await _after_completion(session, activity, now=now)


async def _after_completion(session: AsyncSession, activity: Activity, *, now: datetime) -> Activity | None:
    await session.flush()  # the version the event carries as its sequence
    await add_events(session, publish.activity_completed(activity))
    if activity.follow_up_date is None:
        return None
    follow_up = Activity(
        type=ActivityType.TASK,
        subject=f"Follow up: {activity.subject}"[:300],
        description=activity.next_steps,
        customer_id=activity.customer_id,
        opportunity_id=activity.opportunity_id,
        ticket_id=activity.ticket_id,
        start_date=activity.follow_up_date,
        status=ActivityStatus.PLANNED,
        priority=activity.priority,
        owner_id=activity.owner_id,
        follow_up_of_id=activity.id,
        created_at=now,
        updated_at=now,
    )
    session.add(follow_up)
    await session.flush()
    return follow_up


async def update_activity(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    data: ActivityUpdateRequest,
    if_match: str | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> tuple[Activity, Activity | None]:
    activity = await _editable(
        session, activity_id, if_match=if_match, version=data.version, required=True, caller=caller
    )
    fields = data.model_dump(exclude_unset=True, exclude={"version"})
    now = datetime.now(UTC)

    # Scheduling: an explicit end wins; a new duration moves the end; a new start alone keeps the
    # duration and moves the end with it; clearing the end clears the duration.
    start = fields.get("start_date", activity.start_date)
    if "end_date" in fields:
        end, duration = fields["end_date"], fields.get("duration")
    elif "duration" in fields:
        end, duration = None, fields["duration"]
    elif "start_date" in fields and activity.duration is not None:
        end, duration = None, activity.duration
    else:
        end, duration = activity.end_date, None
    activity.end_date, activity.duration = schedule(start, end, duration)
    activity.start_date = start

    if "owner_id" in fields and fields["owner_id"] != activity.owner_id:
        await _check_owner(session, fields["owner_id"], actor_id)
    if "participant_ids" in fields:
        await require_known_users(session, fields["participant_ids"], field="participantIds")
        await _set_participants(session, activity.id, fields["participant_ids"])
    if "customer_id" in fields:
        fields["customer_id"] = await require_customer(session, fields["customer_id"])
    if fields.get("external_id") not in (None, activity.external_id):
        await check_external_id_free(
            session, Activity, "activity", fields["external_id"], other_than=activity.id
        )

    target = fields.pop("status", activity.status)
    for name, value in fields.items():
        if name not in ("start_date", "end_date", "duration", "participant_ids"):
            setattr(activity, name, value)
    activity.updated_at = now
    follow_up = None
    if target != activity.status:
        _check_transition(activity, target)
        if target == ActivityStatus.COMPLETED:
            follow_up = await _completed(session, activity, now=now)
        else:
            activity.status = target
    await _flush(session, activity)
    return activity, follow_up


async def _flush(session: AsyncSession, activity: Activity) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if problem := external_id_conflict(exc, "activities", "activity", activity.external_id):
            raise problem from None
        raise


async def start_activity(
    session: AsyncSession, activity_id: uuid.UUID, *, if_match: str | None, caller: ScopedCaller | None = None
) -> Activity:
    activity = await _editable(
        session, activity_id, if_match=if_match, version=None, required=False, caller=caller
    )
    _check_transition(activity, ActivityStatus.IN_PROGRESS)
    activity.status = ActivityStatus.IN_PROGRESS
    activity.updated_at = datetime.now(UTC)
    await session.flush()
    return activity


async def complete_activity(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    data: ActivityCompleteRequest,
    if_match: str | None,
    caller: ScopedCaller | None = None,
) -> tuple[Activity, Activity | None]:
    activity = await _editable(
        session, activity_id, if_match=if_match, version=data.version, required=False, caller=caller
    )
    _check_transition(activity, ActivityStatus.COMPLETED)
    fields = data.model_dump(exclude_unset=True, exclude={"version"})
    for name, value in fields.items():
        setattr(activity, name, value)
    follow_up = await _completed(session, activity, now=datetime.now(UTC))
    return activity, follow_up


async def cancel_activity(
    session: AsyncSession,
    activity_id: uuid.UUID,
    *,
    data: ActivityCancelRequest,
    if_match: str | None,
    caller: ScopedCaller | None = None,
) -> Activity:
    activity = await _editable(
        session, activity_id, if_match=if_match, version=data.version, required=False, caller=caller
    )
    _check_transition(activity, ActivityStatus.CANCELLED)
    activity.status = ActivityStatus.CANCELLED
    if data.reason is not None:
        activity.outcome = data.reason
    activity.updated_at = datetime.now(UTC)
    await session.flush()
    return activity


async def delete_activity(
    session: AsyncSession, activity_id: uuid.UUID, *, if_match: str | None, caller: ScopedCaller | None = None
) -> None:
    activity = await _editable(
        session, activity_id, if_match=if_match, version=None, required=False, caller=caller
    )
    await session.delete(activity)
    await session.flush()
    await changes.record_deleted(session, "activity", [activity.id])


def list_query(
    *,
    caller: ScopedCaller,
    params: PageParams,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    participant_id: uuid.UUID | None = None,
    types: Sequence[str] = (),
    statuses: Sequence[str] = (),
    priorities: Sequence[str] = (),
    system: bool | None = None,
    start_from: datetime | None = None,
    start_to: datetime | None = None,
    follow_up_of_id: uuid.UUID | None = None,
    archived: ArchivedMode = "exclude",
) -> tuple[Select, list]:
    """The query and order of an activity list (run by `views.page_of`)."""
    query = select(Activity).where(in_scope(caller), archived_clause(Activity.archived_at, archived))
    if customer_id:
        query = query.where(Activity.customer_id == customer_id)
    if opportunity_id:
        query = query.where(Activity.opportunity_id == opportunity_id)
    if ticket_id:
        query = query.where(Activity.ticket_id == ticket_id)
    if owner_id:
        query = query.where(Activity.owner_id == owner_id)
    if participant_id:
        query = query.where(
            exists().where(
                ActivityParticipant.activity_id == Activity.id, ActivityParticipant.user_id == participant_id
            )
        )
    if types:
        query = query.where(Activity.type.in_(types))
    if statuses:
        query = query.where(Activity.status.in_(statuses))
    if priorities:
        query = query.where(Activity.priority.in_(priorities))
    if system is not None:
        query = query.where(Activity.system.is_(system))
    if start_from:
        query = query.where(Activity.start_date >= start_from)
    if start_to:
        query = query.where(Activity.start_date < start_to)
    if follow_up_of_id:
        query = query.where(Activity.follow_up_of_id == follow_up_of_id)
    return query, order_by(params.sort, SORTABLE, DEFAULT_ORDER)
