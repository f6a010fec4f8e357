"""Tickets: create (number, customer check, SLA due times), read, list, field edits."""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from crm_common import customer_refs, directory
from crm_common.archive import ArchivedMode, archived_clause, check_not_archived
from crm_common.batch import check_external_id_free, external_id_conflict
from crm_common.changes import Changes, ChangesParams, changes_page
from crm_common.concurrency import check_version
from crm_common.errors import FieldError, not_found
from crm_common.models import UtcDateTime
from crm_common.pagination import PageParams, order_by, paginate
from crm_common.record_scope import Access, ScopedCaller, scope_clause
from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.events import publish
from ticket_svc.models import OPEN_STATUSES, Ticket, TicketStatus
from ticket_svc.schemas import TicketCreateRequest, TicketRead, TicketUpdateRequest
from ticket_svc.service import numbers, sla
from ticket_svc.service.errors import ResolutionRequired, TicketClosed, UnknownTicket
from ticket_svc.service.policies import NO_SLA, SlaTerms, select_policy, terms_for

OWNERS = (Ticket.assigned_to_id, Ticket.created_by_id)


def in_scope(caller: ScopedCaller, access: Access = "read"):
    """The tickets `caller` may read (or write): assigned to or opened by them (or, with `team`, by
    their teams' members), or of one of their teams."""
    return scope_clause(caller, OWNERS, Ticket.team_id, access=access)


async def get_ticket(
    session: AsyncSession,
    ticket_id: uuid.UUID,
    *,
    for_update: bool = False,
    caller: ScopedCaller | None = None,
    write: bool = False,
    archived_ok: bool = False,
) -> Ticket:
    """A ticket; `for_update` locks its row first, so the writes on one ticket queue up instead of
    failing each other on the version. Outside `caller`'s read scope a 404 like a missing one; with
    `write`, outside their write scope a 403, and archived a 409 `ARCHIVED` (unless `archived_ok`:
    archive and restore)."""
    query = select(Ticket).where(Ticket.id == ticket_id).execution_options(populate_existing=True)
    if caller is not None:
        query = query.where(in_scope(caller))
    if for_update:
        query = query.with_for_update()
    ticket = (await session.execute(query)).scalar_one_or_none()
    if ticket is None:
        raise not_found("ticket", ticket_id)
    if write and caller is not None:
        caller.check_write((ticket.assigned_to_id, ticket.created_by_id), ticket.team_id)
    if write and not archived_ok:
        check_not_archived(ticket, "ticket")
    return ticket


def clock_of(ticket: Ticket) -> sla.Clock:
    return sla.Clock(ticket.created_at, ticket.sla_stopped_seconds or 0.0, ticket.sla_stopped_at)


def set_due_times(ticket: Ticket, terms: SlaTerms, now: datetime) -> None:
    """Due times from the ticket's targets and its clock as of now (a first response already given
    keeps the due time it had)."""
    target = terms.target(ticket.priority)
    if target is None:
        ticket.first_response_due_at = (
            None if ticket.first_response_at is None else ticket.first_response_due_at
        )
        ticket.resolution_due_at = None
        return
    clock = clock_of(ticket)
    if ticket.first_response_at is None:
        ticket.first_response_due_at = sla.due_at(terms.calendar, clock, target[0], now)
    ticket.resolution_due_at = sla.due_at(terms.calendar, clock, target[1], now)


def ticket_closed(ticket: Ticket) -> TicketClosed:
    return TicketClosed(f"Ticket {ticket.ticket_number} is closed; a closed ticket cannot change.")


async def _check_related(
    session: AsyncSession, related: Sequence[uuid.UUID], *, self_id: uuid.UUID | None
) -> list[str]:
    unique = list(dict.fromkeys(related))
    errors = [
        FieldError(
            field=f"relatedTickets.{i}", message="a ticket cannot relate to itself", code="self_reference"
        )
        for i, r in enumerate(unique)
        if r == self_id
    ]
    if unique:
        found = set((await session.execute(select(Ticket.id).where(Ticket.id.in_(unique)))).scalars())
        errors += [
            FieldError(field=f"relatedTickets.{i}", message="unknown ticket", code="unknown_ticket")
            for i, r in enumerate(unique)
            if r not in found and r != self_id
        ]
    if errors:
        raise UnknownTicket("Related tickets must be other existing tickets.", errors=errors)
    return [str(r) for r in unique]


async def _check_people(session: AsyncSession, assigned_to_id, team_id) -> None:
    if assigned_to_id is not None:
        await directory.require_active_user(session, assigned_to_id, field="assignedToId")
    if team_id is not None:
        await directory.require_active_team(session, team_id, field="teamId")


async def create_ticket(
    session: AsyncSession,
    *,
    data: TicketCreateRequest,
    actor_id: uuid.UUID,
    now: datetime,
    caller: ScopedCaller | None = None,
) -> tuple[Ticket, TicketRead]:
    """The new ticket and its read model. Everything is read and computed first; the number is
    allocated last (service/numbers.py), so the counter row stays locked as briefly as possible."""
    # A merged customer's survivor takes the ticket (the rule everywhere: crm_common.customer_refs).
    customer = await customer_refs.require(session, data.customer_id, field="customerId")
    if caller is not None and data.assigned_to_id is not None:  # given to someone: inside the write scope
        caller.check_write(data.assigned_to_id, data.team_id)
    await _check_people(session, data.assigned_to_id, data.team_id)
    related = await _check_related(session, data.related_tickets, self_id=None)
    await check_external_id_free(session, Ticket, "ticket", data.external_id)
    policy = await select_policy(
        session, priority=data.priority, team_id=data.team_id, customer_priority=customer.priority
    )
    terms = await terms_for(session, policy.revision_id) if policy else NO_SLA
    names = await directory.user_names(session, [data.assigned_to_id])
    ticket = Ticket(
        **data.model_dump(exclude={"customer_id", "related_tickets", "tags"}),
        customer_id=customer.id,
        related_tickets=related,
        tags=list(dict.fromkeys(data.tags)),
        ticket_number="",
        status=TicketStatus.NEW,
        sla_policy_id=policy.id if policy else None,
        sla_revision_id=policy.revision_id if policy else None,
        created_by_id=actor_id,
        created_at=now,
        updated_at=now,
    )
    if sla.should_stop(ticket.status, terms.pause_statuses):
        ticket.sla_stopped_at = now
    set_due_times(ticket, terms, now)
    try:
        await numbers.insert_numbered(session, ticket, now.year, publish.created_event)
    except IntegrityError as exc:
        if problem := external_id_conflict(exc, "tickets", "ticket", ticket.external_id):
            raise problem from None
        raise
    return ticket, to_read(ticket, customer, names.get(ticket.assigned_to_id), now)


async def update_ticket(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    data: TicketUpdateRequest,
    if_match: str | None,
    now: datetime,
    caller: ScopedCaller | None = None,
) -> Ticket:
    ticket = await get_ticket(session, ticket_id, for_update=True, caller=caller, write=True)
    check_version(ticket.version, if_match=if_match, body_version=data.version)
    if ticket.status == TicketStatus.CLOSED:
        raise ticket_closed(ticket)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "assigned_to_id" in changes or "team_id" in changes:
        await _check_people(session, changes.get("assigned_to_id"), changes.get("team_id"))
    if "related_tickets" in changes:
        changes["related_tickets"] = await _check_related(
            session, changes["related_tickets"], self_id=ticket.id
        )
    if "tags" in changes:
        changes["tags"] = list(dict.fromkeys(changes["tags"]))
    if "resolution" in changes and not changes["resolution"] and ticket.status == TicketStatus.RESOLVED:
        raise ResolutionRequired(
            "A resolved ticket keeps its resolution.",
            errors=[FieldError(field="resolution", message="cannot be cleared", code="required")],
        )
    changed = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
    if not changed:
        return ticket
    if "external_id" in changed:
        await check_external_id_free(session, Ticket, "ticket", changed["external_id"], other_than=ticket.id)
    for key, value in changed.items():
        setattr(ticket, key, value)
    if "priority" in changed:
        # The policy chosen at creation stays; its targets for the new priority apply.
        set_due_times(ticket, await terms_for(session, ticket.sla_revision_id), now)
    ticket.updated_at = now
    try:
        await session.flush()
    except IntegrityError as exc:
        if problem := external_id_conflict(exc, "tickets", "ticket", ticket.external_id):
            raise problem from None
        raise
    return ticket


# --- reading --------------------------------------------------------------------------------------


def _overdue(due: datetime | None, stopped_at: datetime | None, now: datetime) -> bool:
    return due is not None and due < (stopped_at or now)


def response_breached(ticket: Ticket, now: datetime) -> bool:
    if ticket.response_breached_at is not None:
        return True
    return (
        ticket.status in OPEN_STATUSES
        and ticket.first_response_at is None
        and _overdue(ticket.first_response_due_at, ticket.sla_stopped_at, now)
    )


def resolution_breached(ticket: Ticket, now: datetime) -> bool:
    if ticket.resolution_breached_at is not None:
        return True
    return ticket.status in OPEN_STATUSES and _overdue(ticket.resolution_due_at, ticket.sla_stopped_at, now)


def overdue_sql(due, now: datetime):
    at = sa.literal(now, UtcDateTime())
    return or_(
        and_(Ticket.sla_stopped_at.is_(None), due < at),
        and_(Ticket.sla_stopped_at.is_not(None), due < Ticket.sla_stopped_at),
    )


def response_breached_sql(now: datetime):
    return or_(
        Ticket.response_breached_at.is_not(None),
        and_(
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.first_response_at.is_(None),
            Ticket.first_response_due_at.is_not(None),
            overdue_sql(Ticket.first_response_due_at, now),
        ),
    )


def resolution_breached_sql(now: datetime):
    return or_(
        Ticket.resolution_breached_at.is_not(None),
        and_(
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.resolution_due_at.is_not(None),
            overdue_sql(Ticket.resolution_due_at, now),
        ),
    )


def breached_sql(now: datetime):
    return or_(response_breached_sql(now), resolution_breached_sql(now))


def to_read(ticket: Ticket, customer: sa.Row | None, assignee_name: str | None, now: datetime) -> TicketRead:
    return TicketRead.model_validate(
        {
            **{k: getattr(ticket, k) for k in Ticket.model_fields},
            "customer_number": customer.customer_number if customer else None,
            "customer_name": customer.full_name if customer else None,
            "assigned_to_name": assignee_name,
            "sla_paused": ticket.sla_stopped_at is not None,
            "response_breached": response_breached(ticket, now),
            "resolution_breached": resolution_breached(ticket, now),
        }
    )


async def read_models(session: AsyncSession, tickets: Sequence[Ticket], now: datetime) -> list[TicketRead]:
    known = await customer_refs.rows_by_id(session, (t.customer_id for t in tickets))
    names = await directory.user_names(session, (t.assigned_to_id for t in tickets))
    return [to_read(t, known.get(t.customer_id), names.get(t.assigned_to_id), now) for t in tickets]


async def read_model(session: AsyncSession, ticket: Ticket, now: datetime) -> TicketRead:
    return (await read_models(session, [ticket], now))[0]


_PRIORITY_RANK = sa.case({"LOW": 1, "NORMAL": 2, "HIGH": 3, "URGENT": 4}, value=Ticket.priority, else_=0)

SORTABLE = {
    "createdAt": Ticket.created_at,
    "updatedAt": Ticket.updated_at,
    "ticketNumber": Ticket.ticket_number,
    "subject": Ticket.subject,
    "status": Ticket.status,
    "priority": _PRIORITY_RANK,
    "dueDate": Ticket.due_date,
    "firstResponseDueAt": Ticket.first_response_due_at,
    "resolutionDueAt": Ticket.resolution_due_at,
    "escalationLevel": Ticket.escalation_level,
    "satisfactionRating": Ticket.satisfaction_rating,
}


def _has_any_tag(session: AsyncSession, tags: Sequence[str]):
    if session.bind.dialect.name == "postgresql":
        return sa.cast(Ticket.tags, postgresql.JSONB).op("?|")(sa.cast(list(tags), postgresql.ARRAY(sa.Text)))
    each = func.json_each(Ticket.tags).table_valued("value")
    return select(1).select_from(each).where(each.c.value.in_(list(tags))).exists()


async def changes_feed(
    session: AsyncSession, params: ChangesParams, now: datetime, *, caller: ScopedCaller
) -> Changes:
    """Tickets the caller may read changed after the cursor (archived ones too, with `archivedAt`; a
    merge re-points them; purged ones as tombstones)."""
    query = select(Ticket).where(in_scope(caller))
    return await changes_page(session, query, "ticket", params, lambda rows: read_models(session, rows, now))


async def list_tickets(
    session: AsyncSession,
    *,
    params: PageParams,
    now: datetime,
    q: str | None = None,
    status: Sequence[str] = (),
    priority: Sequence[str] = (),
    type_: Sequence[str] = (),
    assigned_to_id: uuid.UUID | None = None,
    unassigned: bool | None = None,
    team_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    breached: bool | None = None,
    tags: Sequence[str] = (),
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    caller: ScopedCaller | None = None,
    archived: ArchivedMode = "exclude",
) -> tuple[list[Ticket], int]:
    query = select(Ticket).where(archived_clause(Ticket.archived_at, archived))
    if caller is not None:
        query = query.where(in_scope(caller))
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(Ticket.subject).like(pattern), func.lower(Ticket.ticket_number).like(pattern))
        )
    if status:
        query = query.where(Ticket.status.in_(status))
    if priority:
        query = query.where(Ticket.priority.in_(priority))
    if type_:
        query = query.where(Ticket.type.in_(type_))
    if assigned_to_id is not None:
        query = query.where(Ticket.assigned_to_id == assigned_to_id)
    if unassigned is not None:
        query = query.where(
            Ticket.assigned_to_id.is_(None) if unassigned else Ticket.assigned_to_id.is_not(None)
        )
    if team_id is not None:
        query = query.where(Ticket.team_id == team_id)
    if customer_id is not None:
        query = query.where(Ticket.customer_id == customer_id)
    if breached is not None:
        condition = breached_sql(now)
        query = query.where(condition if breached else ~condition)
    if tags:
        query = query.where(_has_any_tag(session, tags))
    if created_from is not None:
        query = query.where(Ticket.created_at >= created_from)
    if created_to is not None:
        query = query.where(Ticket.created_at < created_to)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Ticket.created_at.desc(), Ticket.id]))
    return await paginate(session, query, params)
