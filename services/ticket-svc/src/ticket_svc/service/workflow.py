"""The ticket's life: status rules, the SLA clock through status changes, escalation, breaches and
satisfaction.

    NEW -> OPEN -> PENDING <-> OPEN -> RESOLVED -> CLOSED      ESCALATED from any open state
"""

import uuid
from datetime import datetime, timedelta

from crm_common.concurrency import check_optional_version
from crm_common.db import insert_for
from crm_common.errors import FieldError
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.events import publish
from ticket_svc.models import OPEN_STATUSES, BreachKind, SlaBreach, Ticket, TicketStatus
from ticket_svc.schemas import TicketSatisfactionRequest, TicketStatusChangeRequest
from ticket_svc.service import sla
from ticket_svc.service.errors import (
    InvalidStatusTransition,
    ReasonRequired,
    ResolutionRequired,
    SatisfactionAlreadyRated,
    TicketNotResolved,
)
from ticket_svc.service.policies import SlaTerms, terms_for
from ticket_svc.service.tickets import clock_of, get_ticket, ticket_closed

S = TicketStatus
ALLOWED: dict[str, tuple[str, ...]] = {
    S.NEW: (S.OPEN, S.ESCALATED),
    S.OPEN: (S.PENDING, S.RESOLVED, S.ESCALATED),
    S.PENDING: (S.OPEN, S.ESCALATED),
    S.ESCALATED: (S.OPEN, S.PENDING, S.RESOLVED, S.ESCALATED),
    S.RESOLVED: (S.OPEN, S.CLOSED),
    S.CLOSED: (),
}


def invalid_transition(current: str, target: str) -> InvalidStatusTransition:
    allowed = list(ALLOWED[current])
    listed = ", ".join(allowed) if allowed else "none (CLOSED is final)"
    return InvalidStatusTransition(
        f"A {current} ticket cannot become {target}; allowed: {listed}.",
        errors=[FieldError(field="status", message=f"not allowed from {current}", code="invalid_transition")],
        extra={"currentStatus": current, "allowedStatuses": allowed},
    )


async def record_breach(
    session: AsyncSession,
    ticket: Ticket,
    kind: BreachKind,
    *,
    now: datetime,
    escalated: bool = False,
    escalation_level: int | None = None,
) -> bool:
    """Record a breach of one kind on a ticket, once ever: False when it was already recorded."""
    due = ticket.first_response_due_at if kind == BreachKind.FIRST_RESPONSE else ticket.resolution_due_at
    result = await session.execute(
        insert_for(session, SlaBreach)
        .values(
            ticket_id=ticket.id,
            kind=kind,
            due_at=due or now,
            detected_at=now,
            escalated=escalated,
            escalation_level=escalation_level,
        )
        .on_conflict_do_nothing(index_elements=["ticket_id", "kind"])
    )
    if kind == BreachKind.FIRST_RESPONSE:
        ticket.response_breached_at = ticket.response_breached_at or now
    else:
        ticket.resolution_breached_at = ticket.resolution_breached_at or now
    return result.rowcount == 1


async def record_late(
    session: AsyncSession, ticket: Ticket, terms: SlaTerms, at: datetime, now: datetime
) -> None:
    """At a first response or a resolution: record the breaches its timing shows."""
    target = terms.target(ticket.priority)
    if target is None:
        return
    used = sla.elapsed_seconds(terms.calendar, clock_of(ticket), at)
    if ticket.first_response_at is None or ticket.first_response_at == at:
        if used > target[0] * 60 and ticket.response_breached_at is None:
            await record_breach(session, ticket, BreachKind.FIRST_RESPONSE, now=now)
    if ticket.status == S.RESOLVED and used > target[1] * 60 and ticket.resolution_breached_at is None:
        await record_breach(session, ticket, BreachKind.RESOLUTION, now=now)


def _run_clock(ticket: Ticket, terms: SlaTerms, status: str, now: datetime) -> None:
    """Stop the SLA clock entering a stopped status; restart it (moving frozen due times on) leaving one."""
    stopping = sla.should_stop(status, terms.pause_statuses)
    if stopping and ticket.sla_stopped_at is None:
        ticket.sla_stopped_at = now
    elif not stopping and ticket.sla_stopped_at is not None:
        stopped_at = ticket.sla_stopped_at
        clock = sla.restart(terms.calendar, clock_of(ticket), now)
        ticket.sla_stopped_seconds = clock.stopped_seconds
        ticket.sla_stopped_at = None
        if ticket.first_response_at is None:
            ticket.first_response_due_at = sla.due_after_restart(
                terms.calendar, ticket.first_response_due_at, stopped_at, now
            )
        ticket.resolution_due_at = sla.due_after_restart(
            terms.calendar, ticket.resolution_due_at, stopped_at, now
        )


async def move(
    session: AsyncSession,
    ticket: Ticket,
    terms: SlaTerms,
    status: str,
    *,
    now: datetime,
    actor_id: uuid.UUID | None,
    pending: publish.Pending,
    reason: str | None = None,
) -> None:
    """Change the status (already checked allowed) with everything that goes with it."""
    previous = ticket.status
    if status == S.RESOLVED:
        ticket.resolved_at = now
        ticket.resolution_time = sla.elapsed_minutes(terms.calendar, clock_of(ticket), now)
    ticket.status = status
    ticket.updated_at = now
    if status == S.RESOLVED:
        await record_late(session, ticket, terms, now, now)
    elif status == S.CLOSED:
        ticket.closed_at = now
    elif previous == S.RESOLVED:  # reopened
        ticket.resolved_at = None
        ticket.resolution_time = None
    _run_clock(ticket, terms, status, now)
    pending.add(publish.status_changed(ticket, previous, actor_id))
    if status == S.RESOLVED:
        pending.add(publish.resolved(ticket, actor_id))
    elif status == S.CLOSED:
        pending.add(publish.closed(ticket, actor_id))
    elif previous == S.RESOLVED:
        pending.add(publish.reopened(ticket, reason or "Reopened"))


async def escalate_ticket(
    session: AsyncSession,
    ticket: Ticket,
    terms: SlaTerms,
    *,
    reason: str,
    now: datetime,
    actor_id: uuid.UUID | None,
    pending: publish.Pending,
    automatic: bool = False,
) -> None:
    """Raise the escalation level by one and make the ticket ESCALATED (open tickets only)."""
    if ticket.status not in OPEN_STATUSES:
        raise invalid_transition(ticket.status, S.ESCALATED)
    if ticket.status != S.ESCALATED:
        await move(session, ticket, terms, S.ESCALATED, now=now, actor_id=actor_id, pending=pending)
    ticket.escalation_level += 1
    ticket.updated_at = now
    pending.add(publish.escalated(ticket, reason, actor_id, automatic))


async def change_status(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    data: TicketStatusChangeRequest,
    if_match: str | None,
    actor_id: uuid.UUID,
    now: datetime,
    caller: ScopedCaller | None = None,
) -> Ticket:
    ticket = await get_ticket(session, ticket_id, for_update=True, caller=caller, write=True)
    check_optional_version(ticket.version, if_match=if_match, body_version=data.version)
    target = data.status
    if target not in ALLOWED[ticket.status]:
        raise invalid_transition(ticket.status, target)
    terms = await terms_for(session, ticket.sla_revision_id)
    pending = publish.Pending(ticket)
    if target == S.ESCALATED:
        if not data.reason:
            raise ReasonRequired(
                "Escalating needs a reason.",
                errors=[FieldError(field="reason", message="required to escalate", code="missing")],
            )
        await escalate_ticket(
            session, ticket, terms, reason=data.reason, now=now, actor_id=actor_id, pending=pending
        )
    else:
        if target == S.RESOLVED:
            if data.resolution:
                ticket.resolution = data.resolution
            if not ticket.resolution:
                raise ResolutionRequired(
                    "Resolving a ticket needs a resolution.",
                    errors=[FieldError(field="resolution", message="required to resolve", code="missing")],
                )
        await move(
            session, ticket, terms, target, now=now, actor_id=actor_id, pending=pending, reason=data.reason
        )
    await pending.write(session)
    return ticket


async def escalate(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    reason: str,
    body_version: int | None,
    if_match: str | None,
    actor_id: uuid.UUID,
    now: datetime,
    caller: ScopedCaller | None = None,
) -> Ticket:
    ticket = await get_ticket(session, ticket_id, for_update=True, caller=caller, write=True)
    check_optional_version(ticket.version, if_match=if_match, body_version=body_version)
    terms = await terms_for(session, ticket.sla_revision_id)
    pending = publish.Pending(ticket)
    await escalate_ticket(session, ticket, terms, reason=reason, now=now, actor_id=actor_id, pending=pending)
    await pending.write(session)
    return ticket


async def rate_satisfaction(
    session: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    data: TicketSatisfactionRequest,
    now: datetime,
    change_window: timedelta,
    caller: ScopedCaller | None = None,
) -> Ticket:
    """A rating on a RESOLVED or CLOSED ticket; it can be replaced within `change_window` of the
    first rating, then it is final."""
    ticket = await get_ticket(session, ticket_id, for_update=True, caller=caller, write=True)
    if ticket.status not in (S.RESOLVED, S.CLOSED):
        raise TicketNotResolved(
            f"Only a resolved or closed ticket can be rated; this one is {ticket.status}.",
            extra={"currentStatus": ticket.status},
        )
    if ticket.satisfaction_rated_at is not None and now - ticket.satisfaction_rated_at > change_window:
        raise SatisfactionAlreadyRated(
            "This ticket was rated already and the time to change the rating has passed.",
            extra={"ratedAt": ticket.satisfaction_rated_at.isoformat()},
        )
    ticket.satisfaction_rating = data.rating
    ticket.satisfaction_comment = data.comment
    if ticket.satisfaction_rated_at is None:
        ticket.satisfaction_rated_at = now
    ticket.updated_at = now
    await session.flush()
    return ticket


__all__ = [
    "ALLOWED",
    "change_status",
    "escalate",
    "escalate_ticket",
    "move",
    "rate_satisfaction",
    "ticket_closed",
]
