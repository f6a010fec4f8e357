"""SLA policies: targets, business hours and pause statuses (administered)."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query, Response

from ticket_svc.api.deps import Admin, IfMatch, Now, SupportAccess
from ticket_svc.schemas import SlaPolicyCreateRequest, SlaPolicyPage, SlaPolicyRead, SlaPolicyUpdateRequest
from ticket_svc.service import policies

router = APIRouter(prefix="/api/v1/sla-policies", tags=["sla-policies"], responses=problem_doc(401, 403))


@router.post(
    "",
    status_code=201,
    operation_id="sla_policies_create",
    summary="Create an SLA policy",
    responses=problem_doc(422),
)
async def create_policy(
    body: SlaPolicyCreateRequest, session: SessionDep, user: Admin, now: Now, response: Response
) -> SlaPolicyRead:
    policy = await policies.create_policy(session, data=body, actor_id=user.id, now=now)
    response.headers["Location"] = f"/api/v1/sla-policies/{policy.id}"
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)


@router.get("", operation_id="sla_policies_list", summary="List SLA policies", responses=problem_doc(422))
async def list_policies(
    session: SessionDep,
    user: SupportAccess,
    params: Annotated[PageParams, Depends(page_params)],
    is_active: Annotated[bool | None, Query(alias="isActive")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
) -> SlaPolicyPage:
    items, total = await policies.list_policies(session, params=params, is_active=is_active, team_id=team_id)
    return SlaPolicyPage.of([SlaPolicyRead.model_validate(p) for p in items], total, params)


@router.get(
    "/{policy_id}", operation_id="sla_policies_get", summary="Get an SLA policy", responses=problem_doc(404)
)
async def get_policy(
    policy_id: uuid.UUID, session: SessionDep, user: SupportAccess, response: Response
) -> SlaPolicyRead:
    policy = await policies.get_policy(session, policy_id)
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)


@router.patch(
    "/{policy_id}",
    operation_id="sla_policies_update",
    summary="Change an SLA policy (new tickets run on the new terms; If-Match or version required)",
    responses=problem_doc(404, 412, 422, 428),
)
async def update_policy(
    policy_id: uuid.UUID,
    body: SlaPolicyUpdateRequest,
    session: SessionDep,
    user: Admin,
    now: Now,
    response: Response,
    if_match: IfMatch = None,
) -> SlaPolicyRead:
    policy = await policies.update_policy(session, policy_id=policy_id, data=body, if_match=if_match, now=now)
    response.headers["ETag"] = etag(policy.version)
    return SlaPolicyRead.model_validate(policy)
