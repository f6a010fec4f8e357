"""HTTP routes of pipeline-svc: translate requests to service calls and back."""

from pipeline_svc.api.invoices import router as invoices_router
from pipeline_svc.api.opportunities import router as opportunities_router
from pipeline_svc.api.products import router as products_router
from pipeline_svc.api.stages import router as stages_router

ROUTERS = [stages_router, opportunities_router, products_router, invoices_router]
