import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.concurrency import etag
from crm_common.errors import problem_doc
from crm_common.pagination import PageParams, any_of, page_params
from fastapi import APIRouter, Depends, Query, Response

from pipeline_svc.api.deps import IfMatch, SalesAccess
from pipeline_svc.models import ProductStatus
from pipeline_svc.schemas import ProductCreateRequest, ProductPage, ProductRead, ProductUpdateRequest
from pipeline_svc.service import products as service

router = APIRouter(prefix="/api/v1/products", tags=["products"], responses=problem_doc(401, 403))


@router.post(
    "",
    status_code=201,
    operation_id="products_create",
    summary="Create a product",
    responses=problem_doc(409, 422),
)
async def create_product(
    body: ProductCreateRequest, session: SessionDep, user: SalesAccess, response: Response
) -> ProductRead:
    product = await service.create_product(session, data=body)
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    response.headers["ETag"] = etag(product.version)
    return ProductRead.model_validate(product)


@router.get("", operation_id="products_list", summary="List and search products", responses=problem_doc(422))
async def list_products(
    session: SessionDep,
    user: SalesAccess,
    params: Annotated[PageParams, Depends(page_params)],
    q: Annotated[str | None, Query(max_length=200, description="Search name and code.")] = None,
    status: Annotated[list[ProductStatus], any_of()] = [],
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> ProductPage:
    items, total = await service.list_products(session, params=params, q=q, status=status, category=category)
    return ProductPage.of([ProductRead.model_validate(p) for p in items], total, params)


@router.get("/{product_id}", operation_id="products_get", summary="Get a product", responses=problem_doc(404))
async def get_product(
    product_id: uuid.UUID, session: SessionDep, user: SalesAccess, response: Response
) -> ProductRead:
    product = await service.get_product(session, product_id)
    response.headers["ETag"] = etag(product.version)
    return ProductRead.model_validate(product)


@router.patch(
    "/{product_id}",
    operation_id="products_update",
    summary="Change a product",
    responses=problem_doc(404, 409, 412, 422, 428),
)
async def update_product(
    product_id: uuid.UUID,
    body: ProductUpdateRequest,
    session: SessionDep,
    user: SalesAccess,
    response: Response,
    if_match: IfMatch = None,
) -> ProductRead:
    product = await service.update_product(session, product_id=product_id, data=body, if_match=if_match)
    response.headers["ETag"] = etag(product.version)
    return ProductRead.model_validate(product)


@router.delete(
    "/{product_id}",
    status_code=204,
    operation_id="products_delete",
    summary="Delete a product that is on no line item",
    responses=problem_doc(404, 409, 412),
)
async def delete_product(
    product_id: uuid.UUID, session: SessionDep, user: SalesAccess, if_match: IfMatch = None
) -> Response:
    await service.delete_product(session, product_id=product_id, if_match=if_match)
    return Response(status_code=204)
