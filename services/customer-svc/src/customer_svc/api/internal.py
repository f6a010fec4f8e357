"""customer-svc's answers to the other contexts (not routed by the gateway, not in the OpenAPI
document): a customer's reference data, so a context that has not yet heard `customer.created`
need not refuse a customer that exists (crm_common.customer_lookup)."""

import uuid

from crm_common.app import SessionDep
from crm_common.customer_lookup import PATH, CustomerRefData, internal_caller, ref_data
from crm_common.errors import not_found
from fastapi import APIRouter, Depends
from sqlalchemy import select

from customer_svc.models import Customer

router = APIRouter(include_in_schema=False, dependencies=[Depends(internal_caller)])


@router.get(PATH, response_model=CustomerRefData, response_model_by_alias=True)
async def customer_ref(customer_id: uuid.UUID, session: SessionDep) -> CustomerRefData:
    customer = (
        await session.execute(select(Customer).where(Customer.id == customer_id))
    ).scalar_one_or_none()
    if customer is None:
        raise not_found("customer", customer_id)
    return ref_data(customer)
