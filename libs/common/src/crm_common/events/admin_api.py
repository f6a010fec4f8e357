"""Admin endpoints over a service's dead letters and outbox, for where there is no shell:
`/api/v1/admin/events/{service}/dead-letters...` and `/api/v1/admin/events/{service}/outbox...`.

Every service serves them for its own name, on its own database, with the functions the `crm events
dlq|outbox` commands use (crm_common.events.operations); the gateway routes the path to the service
it names (its own outbox under `gateway`). Admins only. A dead letter is replayed through the
consumer's inbox, as the command does: an event already applied changes nothing. An outbox replay
sets rows back to PENDING for the service's relay; consumers skip what they already applied.
"""

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import Field, model_validator

from crm_common.auth import Principal, require
from crm_common.errors import ProblemError, problem_doc
from crm_common.events import operations as ops
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.inbox import idempotent_dispatcher
from crm_common.pagination import PageNumber, PageSize
from crm_common.schemas import ApiModel, StrictApiModel
from crm_common.sql_types import AnyRow

if TYPE_CHECKING:  # crm_common.app includes this router
    from crm_common.app import Runtime

PRODUCERS = ("gateway", *SUBSCRIPTIONS)
ServiceName = Literal[PRODUCERS]  # type: ignore[valid-type]
OutboxState = Literal["PENDING", "FAILED", "UNROUTED", "PUBLISHED"]
# Row numbers are BIGINT: larger ones cannot exist (and would overflow the query).
LetterId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The dead letter's number, as listed.")]
Admin = Annotated[Principal, Depends(require("admin"))]


class DeadLetter(ApiModel):
    id: int
    consumer: str
    event_id: uuid.UUID
    event_type: str
    attempts: int = Field(description="Failed deliveries, replays included.")
    first_failed_at: datetime
    last_failed_at: datetime
    summary: str = Field(description="The first line of the last error.")
    applied: bool = Field(
        description="A later delivery applied the event after all: a replay only removes it."
    )


class DeadLetterDetail(DeadLetter):
    error: str = Field(description="The last error with its traceback.")
    payload: dict[str, Any] = Field(description="The CloudEvent as received (or, unreadable, its start).")


class DeadLetterPage(ApiModel):
    items: list[DeadLetter]
    total: int
    page: int
    page_size: int


class ReplayOutcome(ApiModel):
    id: int
    event_type: str
    result: Literal["applied", "already applied"]


class OutboxRow(ApiModel):
    position: int
    event_id: uuid.UUID
    type: str
    state: OutboxState
    attempts: int
    created_at: datetime
    age_seconds: float
    next_attempt_at: datetime | None = None
    published_at: datetime | None = None
    last_error: str | None = None


class OutboxRowDetail(OutboxRow):
    payload: dict[str, Any]


class OutboxPage(ApiModel):
    items: list[OutboxRow]
    total: int
    page: int
    page_size: int


class OutboxReplayRequest(StrictApiModel):
    """Which rows to publish again: by event id, or by the time they were written (and type/state)."""

    event_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    since: datetime | None = None
    until: datetime | None = None
    type: str | None = Field(default=None, max_length=200, description="e.g. customer.created")
    states: list[OutboxState] = Field(
        default_factory=list, max_length=4, description="Only rows in these states (default: any)."
    )

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if bool(self.event_ids) == (self.since is not None):
            raise ValueError("give eventIds or since (not both)")
        if self.until is not None and self.since is None:
            raise ValueError("until goes with since")
        return self


class OutboxReplayed(ApiModel):
    replayed: int = Field(description="Rows set back to PENDING; the relay publishes them at its next poll.")


def _runtime(request: Request, service: ServiceName) -> "Runtime":
    """This process's runtime, if `service` is the one it runs."""
    if service != request.app.state.settings.service_name:
        raise ProblemError(404, "NOT_FOUND", f"{service} is not served here.")
    runtime: Runtime = request.app.state.runtime
    return runtime


def _consumer(request: Request, service: ServiceName) -> "Runtime":
    runtime = _runtime(request, service)
    if service not in SUBSCRIPTIONS:
        raise ProblemError(404, "NOT_FOUND", f"{service} consumes no events, so it keeps no dead letters.")
    return runtime


def _letter_not_found(service: str, number: int) -> ProblemError:
    return ProblemError(404, "DEAD_LETTER_NOT_FOUND", f"{service} has no dead letter {number}.")


def _summary(row: AnyRow) -> dict[str, Any]:
    return {
        **row._mapping,
        "summary": row.error.splitlines()[0] if row.error else "",
        "applied": bool(row.applied),
    }


def _outbox_row(row: AnyRow) -> dict[str, Any]:
    return {
        **row._mapping,
        "type": f"crm.{row.routing_key}",
        "age_seconds": round(ops.age_seconds(row.created_at), 1),
    }


def router() -> APIRouter:
    api = APIRouter(prefix="/api/v1/admin/events/{service}", tags=["event-operations"])
    errors = problem_doc(401, 403, 404, 422)

    @api.get(
        "/dead-letters",
        operation_id="dead_letters_list",
        summary="List a consumer's dead letters, oldest first (admin)",
        responses=errors,
    )
    async def list_dead_letters(
        request: Request, service: ServiceName, _: Admin, page: PageNumber = 1, page_size: PageSize = 25
    ) -> DeadLetterPage:
        runtime = _consumer(request, service)
        rows = await ops.dead_letter_rows(runtime.db, limit=page_size, offset=(page - 1) * page_size)
        total = await ops.count_dead_letters(runtime.db)
        return DeadLetterPage(
            items=[DeadLetter.model_validate(_summary(r)) for r in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    @api.get(
        "/dead-letters/{letter_id}",
        operation_id="dead_letters_get",
        summary="One dead letter in full: payload, error and traceback (admin)",
        responses=errors,
    )
    async def get_dead_letter(
        request: Request, service: ServiceName, letter_id: LetterId, _: Admin
    ) -> DeadLetterDetail:
        runtime = _consumer(request, service)
        rows = await ops.dead_letter_rows(runtime.db, number=letter_id)
        if not rows:
            raise _letter_not_found(service, letter_id)
        return DeadLetterDetail.model_validate(_summary(rows[0]))

    @api.post(
        "/dead-letters/{letter_id}/replay",
        operation_id="dead_letters_replay",
        summary="Run a dead letter through its handler again, removing it once applied (admin)",
        description="Through the consumer's inbox: an event it already applied changes nothing "
        "(`already applied`). If the handler fails again the dead letter is kept, with the new error "
        "and one more attempt, and the answer is 409 `REPLAY_FAILED`.",
        responses=problem_doc(401, 403, 404, 409, 422),
    )
    async def replay_dead_letter(
        request: Request, service: ServiceName, letter_id: LetterId, _: Admin
    ) -> ReplayOutcome:
        runtime = _consumer(request, service)
        rows = await ops.dead_letter_rows(runtime.db, number=letter_id)
        if not rows:
            raise _letter_not_found(service, letter_id)
        dispatch = idempotent_dispatcher(runtime.db, service, request.app.state.event_handlers)
        result = await ops.replay_dead_letter(runtime.db, dispatch, rows[0])
        if result.startswith("failed"):
            raise ProblemError(409, "REPLAY_FAILED", f"{service}/{letter_id} {result}")
        return ReplayOutcome(id=letter_id, event_type=rows[0].event_type, result=result)

    @api.delete(
        "/dead-letters/{letter_id}",
        operation_id="dead_letters_discard",
        summary="Delete a dead letter without applying it (admin; cannot be undone)",
        status_code=204,
        responses=errors,
    )
    async def discard_dead_letter(
        request: Request, service: ServiceName, letter_id: LetterId, _: Admin
    ) -> Response:
        runtime = _consumer(request, service)
        if not await ops.discard_dead_letters(runtime.db, number=letter_id):
            raise _letter_not_found(service, letter_id)
        return Response(status_code=204)

    @api.get(
        "/outbox",
        operation_id="outbox_list",
        summary="List a service's outbox rows, oldest first, with their age (admin)",
        description="By default the rows that need an eye: PENDING (not sent yet), FAILED (not a "
        "CloudEvent, never sendable) and UNROUTED (no queue was bound for the type when sent).",
        responses=errors,
    )
    async def list_outbox(
        request: Request,
        service: ServiceName,
        _: Admin,
        state: Annotated[list[OutboxState] | None, Query(max_length=4)] = None,
        event_type: Annotated[
            str | None, Query(alias="type", max_length=200, description="e.g. customer.created")
        ] = None,
        older_than_seconds: Annotated[
            int | None, Query(alias="olderThanSeconds", ge=0, le=10 * 365 * 86400)
        ] = None,
        page: PageNumber = 1,
        page_size: PageSize = 25,
    ) -> OutboxPage:
        runtime = _runtime(request, service)
        rows, total = await ops.outbox_rows(
            runtime.db,
            states=state or ops.UNSENT,
            event_type=event_type,
            older_than=timedelta(seconds=older_than_seconds) if older_than_seconds is not None else None,
            limit=page_size,
            offset=(page - 1) * page_size,
        )
        return OutboxPage(
            items=[OutboxRow.model_validate(_outbox_row(r)) for r in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    @api.get(
        "/outbox/{event_id}",
        operation_id="outbox_get",
        summary="One outbox row with its event (admin)",
        responses=errors,
    )
    async def get_outbox_row(
        request: Request, service: ServiceName, event_id: uuid.UUID, _: Admin
    ) -> OutboxRowDetail:
        runtime = _runtime(request, service)
        rows, _total = await ops.outbox_rows(runtime.db, states=None, event_ids=[event_id])
        if not rows:
            raise ProblemError(404, "OUTBOX_ROW_NOT_FOUND", f"{service}'s outbox has no event {event_id}.")
        return OutboxRowDetail.model_validate(_outbox_row(rows[0]))

    @api.post(
        "/outbox/replay",
        operation_id="outbox_replay",
        summary="Publish events again (admin)",
        description="Sets the chosen rows, whatever their state, back to PENDING and due now; the "
        "service's relay publishes them at once. Consumers are idempotent through their inbox: an "
        "event they already applied is skipped, so replaying more than needed is harmless. PUBLISHED "
        "rows are kept CRM_OUTBOX_RETENTION_HOURS (168).",
        responses=problem_doc(401, 403, 404, 422),
    )
    async def replay_outbox(
        request: Request, service: ServiceName, body: OutboxReplayRequest, _: Admin
    ) -> OutboxReplayed:
        runtime = _runtime(request, service)
        count = await ops.replay_outbox(
            runtime.db,
            event_ids=body.event_ids or None,
            since=body.since,
            until=body.until,
            event_type=body.type,
            states=body.states or None,
        )
        if count:
            runtime.db.outbox_grew()
        return OutboxReplayed(replayed=count)

    return api
