"""webhook-svc's part of a person's GDPR art. 15 export (composed by the gateway, crm_gateway.privacy):
every delivery whose payload mentions the customer, with the CloudEvent sent and every attempt
(including the receivers' answer excerpts). Admin only; not routed by the gateway, not in the
OpenAPI document."""

import uuid
from typing import Annotated

from crm_common import erasure
from crm_common.app import SessionDep
from crm_common.auth import Principal, require
from fastapi import APIRouter, Depends
from sqlalchemy import select

from webhook_svc.models import Attempt, Delivery

router = APIRouter(include_in_schema=False)


@router.get(erasure.PERSONAL_DATA_PATH)
async def personal_data(
    customer_id: uuid.UUID, session: SessionDep, _: Annotated[Principal, Depends(require("admin"))]
) -> dict:
    deliveries = list(
        (
            await session.execute(
                select(Delivery)
                .where(erasure.mentions(Delivery.payload, {str(customer_id)}))
                .order_by(Delivery.created_at, Delivery.id)
            )
        ).scalars()
    )
    attempts: dict[uuid.UUID, list[Attempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        rows = await session.execute(
            select(Attempt)
            .where(Attempt.delivery_id.in_(list(attempts)))
            .order_by(Attempt.attempted_at, Attempt.id)
        )
        for attempt in rows.scalars():
            attempts[attempt.delivery_id].append(attempt)
    return {
        "deliveries": [
            {**row, "attempts": erasure.rows_as_json(attempts[d.id])}
            for d, row in zip(deliveries, erasure.rows_as_json(deliveries), strict=True)
        ]
    }
