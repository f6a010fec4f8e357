import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, sync_page_params
from fastapi import APIRouter, Depends, Query, Response

from pipeline_svc.api.deps import IfMatch, SalesCaller
from pipeline_svc.models import InvoiceStatus
from pipeline_svc.schemas import InvoiceActionRequest, InvoiceCreateRequest, InvoicePage, InvoiceRead
from pipeline_svc.service import invoices as service

router = APIRouter(prefix="/api/v1/invoices", tags=["invoices"], responses=problem_doc(401, 403))


@router.post(
    "",
    status_code=201,
    operation_id="invoices_create",
    summary="Create a DRAFT invoice for a customer",
    responses=problem_doc(422),
)
async def create_invoice(
    body: InvoiceCreateRequest, session: SessionDep, user: SalesCaller, response: Response
) -> InvoiceRead:
    invoice = await service.create_invoice(session, data=body, caller=user)
    response.headers["Location"] = f"/api/v1/invoices/{invoice.id}"
    response.headers["ETag"] = etag(invoice.version)
    return InvoiceRead.model_validate(invoice)


@router.get("", operation_id="invoices_list", summary="List invoices", responses=problem_doc(422))
async def list_invoices(
    session: SessionDep,
    user: SalesCaller,
    params: Annotated[PageParams, Depends(sync_page_params)],
    customer_id: Annotated[uuid.UUID | None, Query(alias="customerId")] = None,
    opportunity_id: Annotated[uuid.UUID | None, Query(alias="opportunityId")] = None,
    status: Annotated[list[InvoiceStatus], any_of()] = [],
) -> InvoicePage:
    items, total = await service.list_invoices(
        session,
        params=params,
        caller=user,
        customer_id=customer_id,
        opportunity_id=opportunity_id,
        status=status,
    )
    return InvoicePage.of([InvoiceRead.model_validate(i) for i in items], total, params)


@router.get(
    "/{invoice_id}", operation_id="invoices_get", summary="Get an invoice", responses=problem_doc(404)
)
async def get_invoice(
    invoice_id: uuid.UUID, session: SessionDep, user: SalesCaller, response: Response
) -> InvoiceRead:
    invoice = await service.get_invoice(session, invoice_id, caller=user)
    response.headers["ETag"] = etag(invoice.version)
    return InvoiceRead.model_validate(invoice)


def _action(action: str, summary: str):
    async def endpoint(
        invoice_id: uuid.UUID,
        session: SessionDep,
        user: SalesCaller,
        response: Response,
        if_match: IfMatch = None,
        body: InvoiceActionRequest | None = None,
    ) -> InvoiceRead:
        invoice = await service.transition_invoice(
            session,
            invoice_id=invoice_id,
            action=action,
            if_match=if_match,
            body_version=body.version if body else None,
            caller=user,
        )
        response.headers["ETag"] = etag(invoice.version)
        return InvoiceRead.model_validate(invoice)

    router.add_api_route(
        f"/{{invoice_id}}/{action}",
        endpoint,
        methods=["POST"],
        operation_id=f"invoices_{action}",
        summary=summary,
        responses=problem_doc(404, 409, 412, 422),
        response_model=InvoiceRead,
    )


_action("issue", "Issue a DRAFT invoice (sets issueDate, and dueDate if unset)")
_action("pay", "Mark an ISSUED invoice as PAID")
_action("void", "Void a DRAFT or ISSUED invoice")
