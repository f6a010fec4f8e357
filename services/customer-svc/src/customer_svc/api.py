"""HTTP routes of customer-svc: translate requests to service calls and back."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.auth import Principal, require
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, page_params
from fastapi import APIRouter, Depends, Query, Response

from customer_svc import service
from customer_svc.models import CustomerStatus, CustomerType, Priority
from customer_svc.schemas import CustomerCreate, CustomerPage, CustomerRead

router = APIRouter(prefix="/api/v1/customers", tags=["customers"], responses=problem_doc(401, 403))
CustomerAccess = Annotated[Principal, Depends(require("customer_access"))]


@router.post(
    "",
    status_code=201,
    operation_id="customers_create",
    summary="Create a customer or lead",
    responses=problem_doc(409, 422),
)
async def create_customer(
    body: CustomerCreate, session: SessionDep, user: CustomerAccess, response: Response
) -> CustomerRead:
    customer = await service.create_customer(session, data=body, actor_id=user.id)
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    response.headers["ETag"] = f'W/"{customer.version}"'
    return CustomerRead.model_validate(customer)


@router.get(
    "", operation_id="customers_list", summary="List and search customers", responses=problem_doc(422)
)
async def list_customers(
    session: SessionDep,
    user: CustomerAccess,
    params: Annotated[PageParams, Depends(page_params)],
    q: Annotated[
        str | None, Query(max_length=200, description="Search name, email, company, number.")
    ] = None,
    status: Annotated[list[CustomerStatus], Query()] = [],
    type: Annotated[CustomerType | None, Query()] = None,
    priority: Annotated[list[Priority], Query()] = [],
    assigned_to_id: Annotated[uuid.UUID | None, Query(alias="assignedToId")] = None,
    team_id: Annotated[uuid.UUID | None, Query(alias="teamId")] = None,
) -> CustomerPage:
    items, total = await service.list_customers(
        session,
        params=params,
        q=q,
        status=status,
        type_=type,
        priority=priority,
        assigned_to_id=assigned_to_id,
        team_id=team_id,
    )
    return CustomerPage(
        items=[CustomerRead.model_validate(c) for c in items],
        total=total,
        page=params.page,
        pageSize=params.page_size,
    )


@router.get(
    "/{customer_id}", operation_id="customers_get", summary="Get a customer", responses=problem_doc(404)
)
async def get_customer(
    customer_id: uuid.UUID, session: SessionDep, user: CustomerAccess, response: Response
) -> CustomerRead:
    customer = await service.get_customer(session, customer_id)
    response.headers["ETag"] = f'W/"{customer.version}"'
    return CustomerRead.model_validate(customer)
