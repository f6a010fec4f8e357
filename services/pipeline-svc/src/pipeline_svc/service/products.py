"""Products: the catalogue line items are priced from."""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from crm_common.concurrency import check_optional_version, check_version
from crm_common.errors import FieldError, not_found, unique_violation
from crm_common.pagination import PageParams, order_by, paginate
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.models import OpportunityProduct, Product
from pipeline_svc.schemas import ProductCreateRequest, ProductUpdateRequest
from pipeline_svc.service.errors import ProductCodeExists, ProductInUse

SORTABLE = {
    "name": Product.name,
    "code": Product.code,
    "price": Product.price,
    "category": Product.category,
    "createdAt": Product.created_at,
    "updatedAt": Product.updated_at,
}


def _code_exists(code: str) -> ProductCodeExists:
    return ProductCodeExists(
        f"A product with the code {code!r} already exists.",
        errors=[FieldError(field="code", message="already used by another product", code="unique")],
    )


async def _code_taken(session: AsyncSession, code: str, *, other_than: uuid.UUID | None = None) -> bool:
    query = select(Product.id).where(func.lower(Product.code) == code.lower())
    if other_than is not None:
        query = query.where(Product.id != other_than)
    return (await session.execute(query.limit(1))).first() is not None


async def _flush(session: AsyncSession, code: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if unique_violation(exc) == "uq_products_code_lower":
            raise _code_exists(code) from None
        raise


async def create_product(session: AsyncSession, *, data: ProductCreateRequest) -> Product:
    if await _code_taken(session, data.code):
        raise _code_exists(data.code)
    now = datetime.now(UTC)
    product = Product(**data.model_dump(), created_at=now, updated_at=now)
    session.add(product)
    await _flush(session, data.code)
    return product


async def get_product(session: AsyncSession, product_id: uuid.UUID) -> Product:
    product = (
        await session.execute(
            select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if product is None:
        raise not_found("product", product_id)
    return product


async def list_products(
    session: AsyncSession,
    *,
    params: PageParams,
    q: str | None = None,
    status: Sequence[str] = (),
    category: str | None = None,
) -> tuple[list[Product], int]:
    query = select(Product)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(Product.name).like(pattern), func.lower(Product.code).like(pattern))
        )
    if status:
        query = query.where(Product.status.in_(status))
    if category:
        query = query.where(Product.category == category)
    query = query.order_by(*order_by(params.sort, SORTABLE, [Product.name, Product.id]))
    return await paginate(session, query, params)


async def update_product(
    session: AsyncSession, *, product_id: uuid.UUID, data: ProductUpdateRequest, if_match: str | None
) -> Product:
    product = await get_product(session, product_id)
    check_version(product.version, if_match=if_match, body_version=data.version)
    changes = data.model_dump(exclude_unset=True, exclude={"version"})
    if "code" in changes and changes["code"].lower() != product.code.lower():
        if await _code_taken(session, changes["code"], other_than=product.id):
            raise _code_exists(changes["code"])
    for field, value in changes.items():
        setattr(product, field, value)
    if changes:
        product.updated_at = datetime.now(UTC)
        await _flush(session, product.code)
    return product


async def delete_product(session: AsyncSession, *, product_id: uuid.UUID, if_match: str | None) -> None:
    product = await get_product(session, product_id)
    check_optional_version(product.version, if_match=if_match)
    used = await session.execute(
        select(OpportunityProduct.id).where(OpportunityProduct.product_id == product_id).limit(1)
    )
    in_use = ProductInUse(
        f"Product {product.code!r} is on opportunities' line items; set its status to DISCONTINUED instead."
    )
    if used.first() is not None:
        raise in_use
    await session.delete(product)
    try:
        await session.flush()
    except IntegrityError:
        raise in_use from None
