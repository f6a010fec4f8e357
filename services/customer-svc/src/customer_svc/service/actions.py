"""Customer actions beyond field edits: convert a lead, assign to a user and/or team."""

import uuid
from datetime import UTC, datetime

from crm_common import directory
from crm_common.concurrency import check_optional_version
from crm_common.contracts.customer import OpportunityDraft
from crm_common.events.outbox import add_events
from crm_common.record_scope import ScopedCaller
from sqlalchemy.ext.asyncio import AsyncSession

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerStatus
from customer_svc.schemas import CustomerAssignRequest, CustomerConvertRequest
from customer_svc.service.customers import get_customer, merged_error
from customer_svc.service.errors import CustomerNotConvertible

CONVERTIBLE = (CustomerStatus.LEAD, CustomerStatus.PROSPECT)


async def convert_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    data: CustomerConvertRequest,
    if_match: str | None,
    caller: ScopedCaller,
) -> tuple[Customer, OpportunityDraft | None]:
    """A LEAD or PROSPECT becomes a CUSTOMER. The optional opportunity draft gets its id here and
    travels in `customer.converted`; pipeline-svc creates the opportunity with that id."""
    # Locked: of two concurrent conversions the second sees the first's outcome (409, not 412).
    actor_id = caller.id
    customer = await get_customer(session, customer_id, for_update=True, caller=caller, write=True)
    check_optional_version(customer.version, if_match=if_match, body_version=data.version)
    if customer.merged_into_id is not None:
        raise merged_error(customer)
    if customer.status not in CONVERTIBLE:
        raise CustomerNotConvertible(
            f"Only a LEAD or PROSPECT converts to a customer; {customer.customer_number} is {customer.status}.",
            extra={"currentStatus": customer.status},
        )
    previous = customer.status
    customer.status = CustomerStatus.CUSTOMER
    customer.updated_at = datetime.now(UTC)
    draft = None
    if data.opportunity is not None:
        draft = OpportunityDraft(
            opportunity_id=uuid.uuid4(), owner_id=actor_id, **data.opportunity.model_dump()
        )
    await session.flush()
    await add_events(session, publish.customer_converted(customer, previous, actor_id, draft))
    return await get_customer(session, customer.id), draft


async def assign_customer(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    data: CustomerAssignRequest,
    if_match: str | None,
    caller: ScopedCaller,
) -> Customer:
    """Assign to a user and/or a team known (and active) in the directory kept from the gateway's
    events; an explicit null clears the assignee or the team. The customer must be in the caller's
    write scope; who it goes to need not be (a rep hands a lead over to another team)."""
    actor_id = caller.id
    customer = await get_customer(session, customer_id, caller=caller, write=True)
    check_optional_version(customer.version, if_match=if_match, body_version=data.version)
    if customer.merged_into_id is not None:
        raise merged_error(customer)
    sent = data.model_fields_set
    if "assigned_to_id" in sent and data.assigned_to_id is not None:
        await directory.require_active_user(session, data.assigned_to_id, field="assignedToId")
    if "team_id" in sent and data.team_id is not None:
        await directory.require_active_team(session, data.team_id, field="teamId")
    previous_user, previous_team = customer.assigned_to_id, customer.team_id
    if "assigned_to_id" in sent:
        customer.assigned_to_id = data.assigned_to_id
    if "team_id" in sent:
        customer.team_id = data.team_id
    if (customer.assigned_to_id, customer.team_id) == (previous_user, previous_team):
        return customer
    customer.updated_at = datetime.now(UTC)
    await session.flush()
    await add_events(
        session,
        publish.customer_assigned(
            customer, previous_assigned_to_id=previous_user, previous_team_id=previous_team, actor_id=actor_id
        ),
    )
    return await get_customer(session, customer.id)
