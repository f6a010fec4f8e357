import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import Page, PageParams, page_params
from fastapi import APIRouter, Depends, Query, Response

from pipeline_svc.api.deps import AdminAccess, IfMatch, SalesAccess
from pipeline_svc.schemas import (
    OpportunityStageCreateRequest,
    OpportunityStageRead,
    OpportunityStageUpdateRequest,
)
from pipeline_svc.service import stages as service

router = APIRouter(prefix="/api/v1/stages", tags=["stages"], responses=problem_doc(401, 403))


@router.post(
    "",
    status_code=201,
    operation_id="stages_create",
    summary="Add a stage to the pipeline",
    responses=problem_doc(409, 422),
)
async def create_stage(
    body: OpportunityStageCreateRequest, session: SessionDep, user: AdminAccess, response: Response
) -> OpportunityStageRead:
    stage = await service.create_stage(session, data=body)
    response.headers["Location"] = f"/api/v1/stages/{stage.id}"
    response.headers["ETag"] = etag(stage.version)
    return OpportunityStageRead.model_validate(stage)


@router.get(
    "", operation_id="stages_list", summary="List the stages in sortOrder", responses=problem_doc(422)
)
async def list_stages(
    session: SessionDep,
    user: SalesAccess,
    params: Annotated[PageParams, Depends(page_params)],
    is_active: Annotated[bool | None, Query(alias="isActive")] = None,
) -> Page[OpportunityStageRead]:
    items, total = await service.list_stages(session, params=params, is_active=is_active)
    return Page[OpportunityStageRead].of(
        [OpportunityStageRead.model_validate(s) for s in items], total, params
    )


@router.get("/{stage_id}", operation_id="stages_get", summary="Get a stage", responses=problem_doc(404))
async def get_stage(
    stage_id: uuid.UUID, session: SessionDep, user: SalesAccess, response: Response
) -> OpportunityStageRead:
    stage = await service.get_stage(session, stage_id)
    response.headers["ETag"] = etag(stage.version)
    return OpportunityStageRead.model_validate(stage)


@router.patch(
    "/{stage_id}",
    operation_id="stages_update",
    summary="Change a stage (name, probability, order, colour, active, won/lost, requirements)",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_stage(
    stage_id: uuid.UUID,
    body: OpportunityStageUpdateRequest,
    session: SessionDep,
    user: AdminAccess,
    response: Response,
    if_match: IfMatch = None,
) -> OpportunityStageRead:
    stage = await service.update_stage(session, stage_id=stage_id, data=body, if_match=if_match)
    response.headers["ETag"] = etag(stage.version)
    return OpportunityStageRead.model_validate(stage)


@router.delete(
    "/{stage_id}",
    status_code=204,
    operation_id="stages_delete",
    summary="Delete a stage that holds no opportunities",
    responses=problem_doc(404, 409, 412),
)
async def delete_stage(
    stage_id: uuid.UUID, session: SessionDep, user: AdminAccess, if_match: IfMatch = None
) -> Response:
    await service.delete_stage(session, stage_id=stage_id, if_match=if_match)
    return Response(status_code=204)
