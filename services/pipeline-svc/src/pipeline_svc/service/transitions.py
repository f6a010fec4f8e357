"""Moving an opportunity through the pipeline: update_stage (with real stage requirements), win, lose."""

import uuid
from datetime import UTC, datetime

from crm_common.concurrency import check_optional_version
from crm_common.errors import FieldError
from crm_common.events.outbox import add_events
from crm_common.record_scope import ScopedCaller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.events import publish as events
from pipeline_svc.models import Invoice, Opportunity, OpportunityStage, OpportunityStatus
from pipeline_svc.schemas import OpportunityRead
from pipeline_svc.service.errors import InvalidStageTransition, UnknownStage
from pipeline_svc.service.invoices import invoice_for_won
from pipeline_svc.service.opportunities import load_opportunity, not_open, view
from pipeline_svc.service.stages import closing_stage

_EMPTY = (None, "", [], {})


def requirement_met(opportunity: Opportunity, requirement: str) -> bool:
    """One stage requirement, checked against the opportunity as it is now."""
    if requirement == "amount":
        return opportunity.amount is not None and opportunity.amount > 0
    if requirement == "expectedCloseDate":
        return opportunity.expected_close_date is not None
    if requirement == "description":
        return bool((opportunity.description or "").strip())
    if requirement == "teamId":
        return opportunity.team_id is not None
    if requirement == "competitors":
        return bool(opportunity.competitors)
    if requirement == "products":
        return len(opportunity.line_items) > 0
    if requirement.startswith("customFields."):
        value = (opportunity.custom_fields or {}).get(requirement.removeprefix("customFields."))
        if isinstance(value, str):
            value = value.strip()
        return value not in _EMPTY
    return False  # an unknown requirement can never be met


def unmet_requirements(opportunity: Opportunity, stage: OpportunityStage) -> list[str]:
    return [r for r in stage.requirements or () if not requirement_met(opportunity, r)]


async def move_stage(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    stage_id: uuid.UUID,
    if_match: str | None,
    body_version: int | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    """update_stage. Refused (422 INVALID_STAGE_TRANSITION, the reasons in `errors` and the unmet
    requirements in `unmetRequirements`) when the opportunity is not OPEN, the target stage is inactive
    or is the won/lost stage (use win/lose), or, moving forward, the current stage's requirements are
    not met or an active stage with requirements would be skipped. Moving back is always allowed."""
    opportunity = await load_opportunity(session, opportunity_id, lock=True, caller=caller, write=True)
    check_optional_version(opportunity.version, if_match=if_match, body_version=body_version)
    target = await session.get(OpportunityStage, stage_id)
    if target is None:
        raise UnknownStage(
            f"Stage {stage_id} does not exist.",
            errors=[FieldError(field="stageId", message="unknown stage", code="unknown_stage")],
        )
    current = await session.get(OpportunityStage, opportunity.stage_id)
    if opportunity.status != OpportunityStatus.OPEN:
        raise InvalidStageTransition(
            f"Opportunity is {opportunity.status}; only OPEN opportunities move between stages.",
            errors=[FieldError(field="status", message=f"is {opportunity.status}", code="not_open")],
            extra={"unmetRequirements": []},
        )
    if target.id == current.id:
        return opportunity  # already there: nothing changes, no event
    errors: list[FieldError] = []
    unmet: list[dict] = []
    if not target.is_active:
        errors.append(
            FieldError(field="stageId", message=f"stage {target.name!r} is not active", code="stage_inactive")
        )
    if target.is_won or target.is_lost:
        verb = "win" if target.is_won else "lose"
        errors.append(
            FieldError(
                field="stageId",
                message=f"stage {target.name!r} closes the opportunity: use POST /opportunities/{{id}}/{verb}",
                code="closing_stage",
            )
        )
    if target.sort_order >= current.sort_order and not (target.is_won or target.is_lost):
        for requirement in unmet_requirements(opportunity, current):
            unmet.append({"stageId": str(current.id), "stageName": current.name, "requirement": requirement})
            errors.append(
                FieldError(
                    field=requirement,
                    message=f"stage {current.name!r} requires {requirement} before leaving it",
                    code="requirement_unmet",
                )
            )
        skipped = await session.execute(
            select(OpportunityStage)
            .where(
                OpportunityStage.is_active.is_(True),
                OpportunityStage.is_won.is_(False),
                OpportunityStage.is_lost.is_(False),
                OpportunityStage.sort_order > current.sort_order,
                OpportunityStage.sort_order < target.sort_order,
                OpportunityStage.id.not_in([current.id, target.id]),
            )
            .order_by(OpportunityStage.sort_order)
        )
        for stage in skipped.scalars():
            if not stage.requirements:
                continue
            for requirement in stage.requirements:
                unmet.append({"stageId": str(stage.id), "stageName": stage.name, "requirement": requirement})
            errors.append(
                FieldError(
                    field="stageId",
                    message=f"cannot skip stage {stage.name!r}, which requires {', '.join(stage.requirements)}",
                    code="stage_skipped",
                )
            )
    if errors:
        raise InvalidStageTransition(
            f"Opportunity cannot move from {current.name!r} to {target.name!r}; see `errors`.",
            errors=errors,
            extra={"unmetRequirements": unmet},
        )
    opportunity.stage_id = target.id
    opportunity.probability = target.probability
    opportunity.updated_at = datetime.now(UTC)
    await session.flush()
    await add_events(
        session,
        events.opportunity_stage_changed(
            opportunity, target.name, from_stage_id=current.id, from_stage_name=current.name, by=actor_id
        ),
    )
    return opportunity


async def win(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    if_match: str | None,
    body_version: int | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> tuple[OpportunityRead, Invoice]:
    opportunity = await load_opportunity(session, opportunity_id, lock=True, caller=caller, write=True)
    check_optional_version(opportunity.version, if_match=if_match, body_version=body_version)
    if opportunity.status != OpportunityStatus.OPEN:
        raise not_open(opportunity, "be won")
    stage = await closing_stage(session, won=True)
    now = datetime.now(UTC)
    opportunity.status = OpportunityStatus.WON
    opportunity.stage_id = stage.id
    opportunity.probability = 100
    opportunity.actual_close_date = now.date()
    opportunity.updated_at = now
    await session.flush()
    won_event = events.opportunity_won(opportunity, stage.name, by=actor_id)
    # Read what the answer needs first: the invoice number's counter row stays locked from its
    # increment to the commit, so everything after it is kept short.
    won = await view(session, opportunity)
    invoice = await invoice_for_won(session, opportunity, actor_id=actor_id, with_events=(won_event,))
    return won, invoice


async def lose(
    session: AsyncSession,
    *,
    opportunity_id: uuid.UUID,
    reason: str,
    if_match: str | None,
    body_version: int | None,
    actor_id: uuid.UUID,
    caller: ScopedCaller | None = None,
) -> Opportunity:
    opportunity = await load_opportunity(session, opportunity_id, lock=True, caller=caller, write=True)
    check_optional_version(opportunity.version, if_match=if_match, body_version=body_version)
    if opportunity.status != OpportunityStatus.OPEN:
        raise not_open(opportunity, "be lost")
    stage = await closing_stage(session, won=False)
    now = datetime.now(UTC)
    opportunity.status = OpportunityStatus.LOST
    opportunity.stage_id = stage.id
    opportunity.probability = 0
    opportunity.lost_reason = reason
    opportunity.actual_close_date = now.date()
    opportunity.updated_at = now
    await session.flush()
    await add_events(session, events.opportunity_lost(opportunity, stage.name, by=actor_id))
    return opportunity
