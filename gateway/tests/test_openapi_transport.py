"""The merged OpenAPI document describes what the layers in front of the routes send: 400, 413,
422, 429 and 503 problems, and the headers Idempotency-Key, Idempotent-Replayed, ETag, Location,
RateLimit-* and Retry-After where they apply."""

import pytest
from crm_common.errors import PROBLEM_JSON
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PROBLEM = {"schema": {"$ref": "#/components/schemas/Problem"}}


@pytest.fixture
async def doc(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password="a long enough password")
    async with running(create_embedded_app(settings)) as client:
        yield (await client.get("/openapi.json")).json()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield path, method, op


def header_names(response) -> set[str]:
    return set(response.get("headers", {}))


async def test_every_operation_documents_the_problems_any_request_can_get(doc):
    for path, method, op in operations(doc):
        responses = op["responses"]
        for status in ("429", "503"):
            assert responses[status]["content"][PROBLEM_JSON] == PROBLEM, (method, path, status)
            assert "Retry-After" in header_names(responses[status])
        assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= header_names(responses["429"])
        if "requestBody" in op:
            for status in ("400", "413", "422"):
                assert responses[status]["content"][PROBLEM_JSON] == PROBLEM, (method, path, status)
    for name in ("Retry-After", "ETag", "Location", "Idempotent-Replayed", "RateLimit-Limit"):
        assert doc["components"]["headers"][name]["schema"]


async def test_the_action_apis_422_is_documented_in_both_shapes_it_is_sent_in(doc):
    for path in ("/api/v1/actions/customer-manager", "/api/v1/actions/sales-pipeline"):
        content = doc["paths"][path]["post"]["responses"]["422"]["content"]
        assert content["application/json"]["schema"]["$ref"].endswith("/ActionResult")
        assert content[PROBLEM_JSON] == PROBLEM


async def test_idempotency_etag_and_location_are_documented_where_they_apply(doc):
    create = doc["paths"]["/api/v1/customers"]["post"]
    key = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert key["in"] == "header" and not key["required"] and key["schema"]["maxLength"] == 255
    assert {"Location", "ETag", "Idempotent-Replayed"} <= header_names(create["responses"]["201"])
    assert "ETag" in header_names(doc["paths"]["/api/v1/customers/{customer_id}"]["get"]["responses"]["200"])
    # Only the services' writes go through the idempotency middleware; reads never take the key.
    assert not any(
        p["name"] == "Idempotency-Key" for p in doc["paths"]["/api/v1/users"]["post"].get("parameters", [])
    )
    listing = doc["paths"]["/api/v1/customers"]["get"]
    assert not any(p["name"] == "Idempotency-Key" for p in listing.get("parameters", []))
    assert "ETag" not in header_names(listing["responses"]["200"])


async def test_consistency_tokens_are_documented_on_the_services_operations(doc):
    create = doc["paths"]["/api/v1/customers"]["post"]
    assert "CRM-Consistency-Token" in header_names(create["responses"]["201"])
    read = doc["paths"]["/api/v1/opportunities/{opportunity_id}"]["get"]
    token = next(p for p in read["parameters"] if p["name"] == "CRM-Consistency-Token")
    assert token["in"] == "header" and not token["required"]
    assert "CRM-Consistency" in header_names(read["responses"]["200"])
    assert read["responses"]["400"]["content"][PROBLEM_JSON] == PROBLEM  # a malformed token
    # The gateway's own user routes do not take tokens.
    users = doc["paths"]["/api/v1/users"]["get"]
    assert not any(p["name"] == "CRM-Consistency-Token" for p in users.get("parameters", []))
