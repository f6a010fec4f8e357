"""Opportunity stages: the pipeline's columns, in sortOrder."""

import uuid
from datetime import UTC, datetime

from crm_common.concurrency import check_optional_version, check_version
from crm_common.errors import FieldError, not_found, unique_violation
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.models import Opportunity, OpportunityStage
from pipeline_svc.schemas import OpportunityStageCreateRequest, OpportunityStageUpdateRequest
from pipeline_svc.service.errors import (
    InvalidInput,
    NoActiveStage,
    NoLostStage,
    NoWonStage,
    StageInUse,
    StageNameExists,
)

SORTABLE = {
    "sortOrder": OpportunityStage.sort_order,
    "name": OpportunityStage.name,
    "probability": OpportunityStage.probability,
    "createdAt": OpportunityStage.created_at,
}


def _name_exists(name: str) -> StageNameExists:
    return StageNameExists(
        f"A stage named {name!r} already exists.",
        errors=[FieldError(field="name", message="already used by another stage", code="unique")],
    )


async def _name_taken(session: AsyncSession, name: str, *, other_than: uuid.UUID | None = None) -> bool:
    query = select(OpportunityStage.id).where(func.lower(OpportunityStage.name) == name.lower())
    if other_than is not None:
        query = query.where(OpportunityStage.id != other_than)
    return (await session.execute(query.limit(1))).first() is not None


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if unique_violation(exc) == "uq_opportunity_stages_name_lower":
            raise _name_exists(name) from None
        raise


async def create_stage(session: AsyncSession, *, data: OpportunityStageCreateRequest) -> OpportunityStage:
    if await _name_taken(session, data.name):
        raise _name_exists(data.name)
    now = datetime.now(UTC)
    stage = OpportunityStage(**data.model_dump(), created_at=now, updated_at=now)
    session.add(stage)
    await _flush_unique_name(session, data.name)
    return stage


async def get_stage(session: AsyncSession, stage_id: uuid.UUID) -> OpportunityStage:
    stage = (
        await session.execute(
            select(OpportunityStage)
            .where(OpportunityStage.id == stage_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if stage is None:
        raise not_found("stage", stage_id)
    return stage


async def list_stages(
    session: AsyncSession, *, params: PageParams, is_active: bool | None = None
) -> tuple[list[OpportunityStage], int]:
    query = select(OpportunityStage)
    if is_active is not None:
        query = query.where(OpportunityStage.is_active == is_active)
    query = query.order_by(
        *order_by(params.sort, SORTABLE, [OpportunityStage.sort_order, OpportunityStage.name])
    )
    return await paginate(session, query, params)


async def active_stages(session: AsyncSession) -> list[OpportunityStage]:
    rows = await session.execute(
        select(OpportunityStage)
        .where(OpportunityStage.is_active.is_(True))
        .order_by(OpportunityStage.sort_order, OpportunityStage.name)
    )
    return list(rows.scalars())


async def first_open_stage(session: AsyncSession) -> OpportunityStage:
    """Where a new opportunity starts: the first active stage that is neither won nor lost."""
    for stage in await active_stages(session):
        if not stage.is_won and not stage.is_lost:
            return stage
    raise NoActiveStage("The pipeline has no active open stage for a new opportunity to start in.")


async def closing_stage(session: AsyncSession, *, won: bool) -> OpportunityStage:
    for stage in await active_stages(session):
        if stage.is_won if won else stage.is_lost:
            return stage
    kind = "won" if won else "lost"
    raise (NoWonStage if won else NoLostStage)(
        f"The pipeline has no active {kind} stage (isWon/isLost) to close into."
    )


async def stage_in_use(session: AsyncSession, stage_id: uuid.UUID) -> bool:
    found = await session.execute(select(Opportunity.id).where(Opportunity.stage_id == stage_id).limit(1))
    return found.first() is not None


def _in_use(stage: OpportunityStage, what: str) -> StageInUse:
    return StageInUse(
        f"Stage {stage.name!r} holds opportunities, so it cannot {what}; deactivate it instead (isActive false).",
    )


async def update_stage(
    session: AsyncSession,
    *,
    stage_id: uuid.UUID,
    data: OpportunityStageUpdateRequest,
    if_match: str | None,
) -> OpportunityStage:
    stage = await get_stage(session, stage_id)
    check_version(stage.version, if_match=if_match, body_version=data.version)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "name" in changes and changes["name"] != stage.name:
        if await _name_taken(session, changes["name"], other_than=stage.id):
            raise _name_exists(changes["name"])
    is_won = changes.get("is_won", stage.is_won)
    is_lost = changes.get("is_lost", stage.is_lost)
    if is_won and is_lost:
        raise InvalidInput(
            "A stage cannot be both isWon and isLost.",
            errors=[
                FieldError(field="isWon", message="a stage cannot be both won and lost", code="conflict")
            ],
        )
    if (is_won != stage.is_won or is_lost != stage.is_lost) and await stage_in_use(session, stage.id):
        raise _in_use(stage, "change between open, won and lost")
    for field, value in changes.items():
        setattr(stage, field, value)
    if changes:
        stage.updated_at = datetime.now(UTC)
        await _flush_unique_name(session, stage.name)
    return stage


async def delete_stage(session: AsyncSession, *, stage_id: uuid.UUID, if_match: str | None) -> None:
    stage = await get_stage(session, stage_id)
    check_optional_version(stage.version, if_match=if_match)
    if await stage_in_use(session, stage.id):
        raise _in_use(stage, "be deleted")
    await session.delete(stage)
    try:
        await session.flush()
    except IntegrityError:
        # An opportunity moved into it meanwhile: the foreign key keeps it.
        raise _in_use(stage, "be deleted") from None
