"""campaign-svc's part of a person's GDPR art. 15 export (composed by the gateway, crm_gateway.privacy):
every campaign membership of the customer with its funnel dates, the interactions tracked, the leads
it counts as and the conversions credited. Admin only; not routed by the gateway, not in the OpenAPI
document."""

import uuid
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.auth import Principal, require
from crm_common.erasure import PERSONAL_DATA_PATH, rows_as_json
from fastapi import APIRouter, Depends
from sqlalchemy import select

from campaign_svc.models import (
    Campaign,
    CampaignConversion,
    CampaignInteraction,
    CampaignLead,
    CampaignTarget,
)

router = APIRouter(include_in_schema=False)


@router.get(PERSONAL_DATA_PATH)
async def personal_data(
    customer_id: uuid.UUID, session: SessionDep, _: Annotated[Principal, Depends(require("admin"))]
) -> dict:
    memberships = (
        await session.execute(
            select(CampaignTarget, Campaign.name, Campaign.type, Campaign.status)
            .join(Campaign, Campaign.id == CampaignTarget.campaign_id)
            .where(CampaignTarget.customer_id == customer_id)
            .order_by(CampaignTarget.added_at, CampaignTarget.id)
        )
    ).all()

    async def of(model, order):
        rows = await session.execute(select(model).where(model.customer_id == customer_id).order_by(order))
        return rows_as_json(rows.scalars())

    return {
        "memberships": [
            {**row, "campaignName": name, "campaignType": type_, "campaignStatus": status}
            for row, name, type_, status in zip(
                rows_as_json(m[0] for m in memberships),
                (m[1] for m in memberships),
                (m[2] for m in memberships),
                (m[3] for m in memberships),
                strict=True,
            )
        ],
        "interactions": await of(CampaignInteraction, CampaignInteraction.occurred_at),
        "leads": await of(CampaignLead, CampaignLead.created_at),
        "conversions": await of(CampaignConversion, CampaignConversion.won_at),
    }
