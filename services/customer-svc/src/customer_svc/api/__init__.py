"""HTTP routes of customer-svc: translate requests to service calls and back."""

from customer_svc.api.customers import router as customers_router
from customer_svc.api.internal import router as internal_router
from customer_svc.api.segments import router as segments_router

# In this order: the OpenAPI document lists the paths as they are registered.
ROUTERS = [customers_router, segments_router, internal_router]
