"""HTTP routes of ticket-svc: translate requests to service calls and back, one module per resource."""

from ticket_svc.api import archiving, batch, communications, metrics, policies, tickets, workflow

# In this order: a request is matched against the routes in turn, so the fixed paths under /tickets
# (metrics, batch, changes) come before /tickets/{ticket_id}; the OpenAPI document lists the paths
# in the same order.
ROUTERS = [
    tickets.collection,
    metrics.router,
    batch.router,
    tickets.router,
    archiving.router,
    workflow.router,
    communications.router,
    policies.router,
]
