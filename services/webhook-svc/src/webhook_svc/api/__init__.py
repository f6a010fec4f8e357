"""HTTP routes of webhook-svc: translate requests to service calls and back.

In this order: the OpenAPI document lists the paths as the routers register them."""

from webhook_svc.api.deliveries import router as deliveries_router
from webhook_svc.api.internal import router as internal_router
from webhook_svc.api.webhooks import router as webhooks_router

ROUTERS = [webhooks_router, deliveries_router, internal_router]
