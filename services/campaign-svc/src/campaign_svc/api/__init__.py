"""HTTP routes of campaign-svc: translate requests to service calls and back.

In this order: the OpenAPI document lists the paths as the routers register them."""

from campaign_svc.api.campaigns import router as campaigns_router
from campaign_svc.api.internal import router as internal_router
from campaign_svc.api.targets import router as targets_router
from campaign_svc.api.tracking import router as tracking_router

ROUTERS = [campaigns_router, targets_router, tracking_router, internal_router]
