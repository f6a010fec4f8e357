import pytest
from crm_gateway.routing import service_for


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/customers", "customer"),
        ("/api/v1/customers/abc", "customer"),
        ("/api/v1/customers/merge", "customer"),
        ("/api/v1/customers/abc/timeline", "activity"),
        ("/api/v1/opportunities/abc/timeline", "activity"),
        ("/api/v1/tickets/abc/timeline", "activity"),
        ("/api/v1/activities/agenda", "activity"),
        ("/api/v1/opportunities/abc/win", "pipeline"),
        ("/api/v1/stages", "pipeline"),
        ("/api/v1/tickets/metrics", "ticket"),
        ("/api/v1/campaigns/abc/metrics", "campaign"),
        ("/api/v1/webhooks", "webhook"),
        ("/api/v1/webhooks/abc/deliveries", "webhook"),
        ("/api/v1/customersx", None),
        ("/api/v2/customers", None),
        ("/api/v1/customers/abc/timeline/extra", "customer"),
    ],
)
def test_paths_route_to_their_service(path, service):
    assert service_for(path) == service
