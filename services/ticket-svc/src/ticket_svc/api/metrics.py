"""GET /tickets/metrics: the support figures."""

import uuid
from typing import Annotated, Literal

from crm_common.app import ReadTransactionDep
from crm_common.errors import problem_doc
from fastapi import Query
from pydantic import AwareDatetime

from ticket_svc.api.deps import Now, TicketCaller, tickets_router
from ticket_svc.schemas import TicketMetricsReport
from ticket_svc.service import metrics

router = tickets_router()


@router.get(
    "/metrics",
    operation_id="tickets_metrics",
    summary="Ticket metrics: volumes, SLA breach rate, response and resolution times, CSAT",
    responses=problem_doc(422),
)
async def ticket_metrics(
    session: ReadTransactionDep,  # SET LOCAL work_mem holds for its transaction only
    user: TicketCaller,
    now: Now,
    created_from: Annotated[
        AwareDatetime | None, Query(alias="from", description="Tickets created at or after this instant.")
    ] = None,
    created_to: Annotated[
        AwareDatetime | None, Query(alias="to", description="Tickets created before this instant.")
    ] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
    assigned_to_id: Annotated[uuid.UUID | None, Query(alias="assignedToId")] = None,
    group_by: Annotated[
        Literal["team", "day", "week", "month"] | None,
        Query(
            alias="groupBy", description="Also break the figures down by team or by creation period (UTC)."
        ),
    ] = None,
) -> TicketMetricsReport:
    return await metrics.ticket_metrics(
        session,
        now=now,
        created_from=created_from,
        created_to=created_to,
        team_id=team_id,
        assigned_to_id=assigned_to_id,
        group_by=group_by,
        caller=user,
    )
