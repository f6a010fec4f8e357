"""`GET /api/v1/customers/{id}/personal-data`: everything held about one person (GDPR art. 15) as one
JSON document, composed from the services' own endpoints with the caller's token, like the dashboard.

Unlike the dashboard it is all or nothing: a partial answer to an access request would mislead, so a
service that cannot answer makes the whole export a 503 (retry later)."""

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from crm_common.auth import Principal, require
from crm_common.erasure import PERSONAL_DATA_PATH
from crm_common.errors import ProblemError, problem_doc
from fastapi import APIRouter, Depends, Request

from crm_gateway.internal import ServiceClient, ServiceUnavailable

router = APIRouter(prefix="/api/v1/customers", tags=["customers"])

PAGE_SIZE = 200


class _Export:
    def __init__(self, client: ServiceClient, authorization: str | None) -> None:
        self.client, self.authorization = client, authorization

    async def get(self, service: str, path: str, params: dict[str, Any] | None = None) -> Any:
        r = await self.client.get(service, path, params=params, authorization=self.authorization)
        if r.status >= 400:
            body = r.body if isinstance(r.body, dict) else {}
            raise ProblemError(r.status, body.get("code", "EXPORT_REFUSED"), body.get("detail"))
        return r.body

    async def every(self, service: str, path: str, **filters: str) -> list[dict[str, Any]]:
        """Every page of a list."""
        items, page = [], 1
        while True:
            body = await self.get(service, path, {**filters, "page": page, "pageSize": PAGE_SIZE})
            items += body["items"]
            if page * PAGE_SIZE >= body["total"]:
                return items
            page += 1


async def compose(
    client: ServiceClient, customer_id: uuid.UUID, *, authorization: str | None
) -> dict[str, Any]:
    export = _Export(client, authorization)
    cid = str(customer_id)
    # The customer first: an unknown one is a 404 before anything else is asked.
    customer = await export.get("customer", f"/api/v1/customers/{cid}")
    own_part = PERSONAL_DATA_PATH.format(customer_id=cid)
    opportunities, invoices, activities, tickets, campaigns, webhooks = await asyncio.gather(
        export.every("pipeline", "/api/v1/opportunities", customerId=cid),
        export.every("pipeline", "/api/v1/invoices", customerId=cid),
        export.every("activity", "/api/v1/activities", customerId=cid),
        export.every("ticket", "/api/v1/tickets", customerId=cid),
        export.get("campaign", own_part),
        export.get("webhook", own_part),
    )
    communications = await asyncio.gather(
        *(export.every("ticket", f"/api/v1/tickets/{t['id']}/communications") for t in tickets)
    )
    return {
        "customerId": cid,
        "generatedAt": datetime.now(UTC).isoformat(),
        "customer": customer,
        "opportunities": opportunities,
        "invoices": invoices,
        "activities": activities,
        "tickets": [
            {**ticket, "communications": comms} for ticket, comms in zip(tickets, communications, strict=True)
        ],
        # Memberships (with funnel dates), tracked interactions, leads and conversions.
        "campaigns": campaigns,
        # Webhook deliveries whose payload mentions the person, with every attempt.
        "webhookDeliveries": webhooks["deliveries"],
    }


@router.get(
    "/{customer_id}/personal-data",
    operation_id="customers_personal_data",
    summary="Everything held about a person, as one JSON document (GDPR art. 15)",
    description="Admin only. The customer record (addresses, notes, custom fields) with its opportunities, "
    "invoices, activities, tickets with every communication, campaign memberships (interactions, leads, "
    "conversions) and the webhook deliveries that mention the person, each as its own service answers it, "
    "composed with the caller's token. All or nothing: 503 `SERVICE_UNAVAILABLE` when a service cannot "
    "answer (retry later); 404 `CUSTOMER_NOT_FOUND` for an unknown id. See docs/privacy.md.",
    responses=problem_doc(401, 403, 404, 503),
)
async def personal_data(
    customer_id: uuid.UUID, request: Request, _: Annotated[Principal, Depends(require("admin"))]
) -> dict[str, Any]:
    try:
        return await compose(
            request.app.state.service_client, customer_id, authorization=request.headers.get("authorization")
        )
    except ServiceUnavailable as exc:
        raise ProblemError(
            503, "SERVICE_UNAVAILABLE", f"The export cannot be complete now ({exc}); retry later."
        ) from None
