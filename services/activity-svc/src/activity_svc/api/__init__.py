"""HTTP routes of activity-svc: translate requests to service calls and back.

ROUTERS in the order they are registered: a path is matched by the first route that fits, and the
OpenAPI document lists paths in this order."""

from activity_svc.api import activities, batch, changes, timelines, views

ROUTERS = [
    activities.collection,
    views.router,
    batch.router,
    changes.router,
    activities.router,
    timelines.router,
]
