"""Reading activities as people look at them: with customer, owner and participant names,
timelines, the caller's agenda in their time zone, and the recent-activities feed."""

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from crm_common import customer_refs, directory
from crm_common.changes import Changes, ChangesParams, changes_page
from crm_common.directory import SYSTEM_USER_ID, SYSTEM_USER_NAME
from crm_common.pagination import PageParams, cursor_window, next_cursor, order_by, sync_filters, sync_order
from crm_common.record_scope import ScopedCaller
from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from activity_svc.models import OPEN_STATUSES, Activity, ActivityParticipant, ActivityType
from activity_svc.schemas import (
    ActivityAgenda,
    ActivityAgendaBucket,
    ActivityFeed,
    ActivityFeedGroup,
    ActivityParticipantRead,
    ActivityRead,
)
from activity_svc.service.activities import DEFAULT_ORDER, SORTABLE, in_scope
from activity_svc.service.errors import InvalidTimeZone

AGENDA_TYPES = (ActivityType.TASK, ActivityType.MEETING)


async def present(
    session: AsyncSession,
    activities: Sequence[Activity],
    *,
    names: dict[uuid.UUID, tuple[str | None, str | None]] | None = None,
) -> list[ActivityRead]:
    """Activities as the API shows them: with participants and the names the local read models
    know (customer names from customer events, user names from the directory). `names` maps an
    activity id to (customer name, owner name) when the caller already fetched them."""
    if not activities:
        return []
    participants: dict[uuid.UUID, list[ActivityParticipantRead]] = {}
    rows = await session.execute(
        select(ActivityParticipant.activity_id, ActivityParticipant.user_id, directory.users.c.full_name)
        .outerjoin(directory.users, directory.users.c.id == ActivityParticipant.user_id)
        .where(ActivityParticipant.activity_id.in_([a.id for a in activities]))
        .order_by(ActivityParticipant.activity_id, ActivityParticipant.user_id)
    )
    for row in rows:
        participants.setdefault(row.activity_id, []).append(
            ActivityParticipantRead(user_id=row.user_id, name=row.full_name)
        )
    if names is None:
        users = await directory.user_names(session, {a.owner_id for a in activities} - {SYSTEM_USER_ID})
        customers = await customer_refs.names(session, (a.customer_id for a in activities))
        names = {a.id: (customers.get(a.customer_id), users.get(a.owner_id)) for a in activities}
    result = []
    for a in activities:
        # From a dict, not from_attributes on the ORM object: several times faster for list pages.
        fields = {name: getattr(a, name) for name in _COLUMNS}
        customer_name, owner_name = names.get(a.id, (None, None))
        fields["customer_name"] = customer_name if a.customer_id else None
        fields["owner_name"] = SYSTEM_USER_NAME if a.owner_id == SYSTEM_USER_ID else owner_name
        fields["participants"] = participants.get(a.id, [])
        result.append(ActivityRead.model_validate(fields))
    return result


_COLUMNS = tuple(name for name in ActivityRead.model_fields if name in Activity.__table__.c)


async def page_of(
    session: AsyncSession, query: Select, order: Sequence, params: PageParams
) -> tuple[list[ActivityRead], int]:
    """A page of activities in one statement: the page's rows in order with the customer and owner
    names joined on (primary-key lookups, so the index scan still stops after one page) and the
    total of the unpaged query; then their participants. With the sync parameters, filtered by
    `updatedAfter`/`createdAfter`, and in cursor mode the page after the cursor in sync order."""
    query = sync_filters(query, params, Activity)
    limit, offset = params.page_size, (params.page - 1) * params.page_size
    if params.cursor_mode:
        query = await cursor_window(session, query, params, Activity)
        order, limit, offset = sync_order(Activity), params.page_size + 1, 0
    counted = select(func.count(Activity.id))
    if query.whereclause is not None:
        counted = counted.where(query.whereclause)
    total = counted.scalar_subquery()
    rows = (
        await session.execute(
            query.add_columns(customer_refs.refs.c.full_name, directory.users.c.full_name, total)
            .outerjoin(customer_refs.refs, customer_refs.refs.c.id == Activity.customer_id)
            .outerjoin(directory.users, directory.users.c.id == Activity.owner_id)
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    if params.cursor_mode:
        rows = next_cursor(rows, params, Activity, record=lambda row: row[0])
    if rows:
        count = rows[0][3]
    elif params.page == 1:
        count = 0
    else:
        count = (await session.execute(counted)).scalar_one()
    activities = [r[0] for r in rows]
    names = {r[0].id: (r[1], r[2]) for r in rows}
    return await present(session, activities, names=names), count


async def changes_feed(session: AsyncSession, params: ChangesParams, *, caller: ScopedCaller) -> Changes:
    """Activities the caller may read changed after the cursor (archived ones too, with `archivedAt`),
    and deleted or purged ones as tombstones."""
    query = select(Activity).where(in_scope(caller))
    return await changes_page(session, query, "activity", params, lambda rows: present(session, rows))


async def present_one(session: AsyncSession, activity: Activity) -> ActivityRead:
    return (await present(session, [activity]))[0]


async def timeline(
    session: AsyncSession,
    *,
    params: PageParams,
    customer_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    types: Sequence[str] = (),
    system: bool | None = None,
    caller: ScopedCaller | None = None,
) -> tuple[list[ActivityRead], int]:
    """Everything about one customer, opportunity or ticket: the user activities `caller` may read
    and the system notes (owned by no one: the record's history, part of every timeline), mixed,
    newest first (by startDate)."""
    query = select(Activity).where(Activity.archived_at.is_(None))
    if caller is not None:
        query = query.where(or_(in_scope(caller), Activity.system.is_(True)))
    if customer_id is not None:
        query = query.where(Activity.customer_id == customer_id)
    if opportunity_id is not None:
        query = query.where(Activity.opportunity_id == opportunity_id)
    if ticket_id is not None:
        query = query.where(Activity.ticket_id == ticket_id)
    if types:
        query = query.where(Activity.type.in_(types))
    if system is not None:
        query = query.where(Activity.system.is_(system))
    return await page_of(session, query, order_by(params.sort, SORTABLE, DEFAULT_ORDER), params)


# --- time zones -------------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZone(
            f"Unknown time zone {name!r}; use an IANA name such as Europe/Paris.", message="unknown time zone"
        ) from None


async def caller_zone(session: AsyncSession, user_id: uuid.UUID, requested: str | None) -> str:
    """The time zone asked for, else the caller's from the directory, else UTC."""
    if requested is not None:
        zone(requested)
        return requested
    found = (
        await session.execute(sa.select(directory.users.c.time_zone).where(directory.users.c.id == user_id))
    ).scalar_one_or_none()
    try:
        return zone(found).key if found else "UTC"
    except InvalidTimeZone:
        return "UTC"


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _between(first: date | None, last: date | None, tz: ZoneInfo):
    """Activities on local dates first..last (inclusive; None is open-ended). A timed activity's
    date is its start in the caller's zone; an all-day activity is a calendar date, stored as
    midnight UTC of that date, the same date in every zone."""
    timed = [Activity.is_all_day.is_(False)]
    all_day = [Activity.is_all_day.is_(True)]
    if first is not None:
        timed.append(Activity.start_date >= local_midnight(first, tz))
        all_day.append(Activity.start_date >= utc_midnight(first))
    if last is not None:
        timed.append(Activity.start_date < local_midnight(last + timedelta(days=1), tz))
        all_day.append(Activity.start_date < utc_midnight(last + timedelta(days=1)))
    return or_(and_(*timed), and_(*all_day))


async def agenda(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    time_zone: str,
    at: datetime | None,
    days: int,
    types: Sequence[str],
    limit: int,
) -> ActivityAgenda:
    """The caller's open activities (as owner or participant): overdue, due today, upcoming."""
    tz = zone(time_zone)
    at = (at or datetime.now(UTC)).astimezone(UTC)
    today = at.astimezone(tz).date()
    mine = or_(
        Activity.owner_id == user_id,
        exists().where(
            ActivityParticipant.activity_id == Activity.id, ActivityParticipant.user_id == user_id
        ),
    )
    base = select(Activity).where(
        mine,
        Activity.status.in_(OPEN_STATUSES),
        Activity.type.in_(types or AGENDA_TYPES),
        Activity.archived_at.is_(None),
    )
    buckets = []
    for first, last in (
        (None, today - timedelta(days=1)),
        (today, today),
        (today + timedelta(days=1), today + timedelta(days=days)),
    ):
        query = base.where(_between(first, last, tz))
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        items = (
            (await session.execute(query.order_by(Activity.start_date, Activity.id).limit(limit)))
            .scalars()
            .all()
        )
        buckets.append(ActivityAgendaBucket(total=total, items=await present(session, items)))
    overdue, due_today, upcoming = buckets
    return ActivityAgenda(
        time_zone=tz.key, at=at, today=today, overdue=overdue, due_today=due_today, upcoming=upcoming
    )


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


async def feed(
    session: AsyncSession,
    *,
    time_zone: str,
    limit: int,
    before: datetime | None,
    owner_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    types: Sequence[str],
    include_system: bool,
    group_by_date: bool,
    caller: ScopedCaller | None = None,
) -> ActivityFeed:
    """The latest activities (by creation), with customer and owner names; grouped by the local
    creation date when asked."""
    tz = zone(time_zone)
    query = select(Activity).where(Activity.archived_at.is_(None))
    if caller is not None:
        query = query.where(in_scope(caller))
    if before is not None:
        query = query.where(Activity.created_at < before)
    if owner_id is not None:
        query = query.where(Activity.owner_id == owner_id)
    if customer_id is not None:
        query = query.where(Activity.customer_id == customer_id)
    if types:
        query = query.where(Activity.type.in_(types))
    if not include_system:
        query = query.where(Activity.system.is_(False))
    rows = (
        (await session.execute(query.order_by(Activity.created_at.desc(), Activity.id.desc()).limit(limit)))
        .scalars()
        .all()
    )
    items = await present(session, rows)
    groups: list[ActivityFeedGroup] = []
    if group_by_date:
        for item in items:
            day = local_date(item.created_at, tz)
            if not groups or groups[-1].date != day:
                groups.append(ActivityFeedGroup(date=day, items=[]))
            groups[-1].items.append(item)
    return ActivityFeed(time_zone=tz.key, items=items, groups=groups)
