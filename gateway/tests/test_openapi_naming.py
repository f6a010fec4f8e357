"""Schema names in the merged OpenAPI document follow one rule (docs/api-guide.md, "Naming"), because
generated clients name their classes after them: a JSON request body is `<Resource><Action>Request`,
and custom fields are one shared `CustomFields` schema wherever a request carries them."""

import re

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

# A resource and an action, two or more capitalised words (`OAuthClient` too), then `Request`.
REQUEST_BODY_NAME = re.compile(r"^(?:[A-Z]+[a-z0-9]*){2,}Request$")
SCHEMA_REF = "#/components/schemas/"


@pytest.fixture
async def doc(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password="a long enough password")
    async with running(create_embedded_app(settings)) as client:
        yield (await client.get("/openapi.json")).json()


def json_request_bodies(doc):
    """(method, path, schema name) of every JSON request body; forms and files are named by their
    media type (the OAuth2 token form is FastAPI's `Body_auth_token`)."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = op.get("requestBody", {}).get("content", {}) if isinstance(op, dict) else {}
            schema = content.get("application/json", {}).get("schema")
            if schema is not None:
                ref = schema.get("$ref", "")
                yield method, path, ref.removeprefix(SCHEMA_REF) if ref.startswith(SCHEMA_REF) else schema


def misnamed_request_bodies(doc) -> list[str]:
    return [
        f"{method.upper()} {path}: {name}"
        for method, path, name in json_request_bodies(doc)
        if not (isinstance(name, str) and REQUEST_BODY_NAME.match(name))
    ]


def inline_custom_fields(doc) -> list[str]:
    """Request bodies whose `customFields` is not the shared `CustomFields` (or it or null). A record's
    custom fields only: a segment filter's `customFields` (nested) is a filter, not a record's fields."""
    schemas = doc["components"]["schemas"]
    ref = {"$ref": SCHEMA_REF + "CustomFields"}
    found = set()
    for _, _, name in json_request_bodies(doc):
        prop = schemas.get(name, {}).get("properties", {}).get("customFields")
        if prop is not None and prop.get("$ref") != ref["$ref"] and ref not in prop.get("anyOf", []):
            found.add(name)
    return sorted(found)


async def test_every_json_request_body_is_named_resource_action_request(doc):
    bodies = list(json_request_bodies(doc))
    assert len(bodies) > 50
    assert misnamed_request_bodies(doc) == []


async def test_request_custom_fields_are_one_shared_schema(doc):
    assert "CustomFields" in doc["components"]["schemas"]
    assert inline_custom_fields(doc) == []


def test_the_rule_catches_the_names_it_replaced():
    names = ["ConvertRequest", "TicketSatisfactionIn", "OpportunityStageChange", "BatchInput_TicketCreate_"]
    doc = {
        "paths": {
            f"/x{i}": {
                "post": {
                    "requestBody": {"content": {"application/json": {"schema": {"$ref": SCHEMA_REF + n}}}}
                }
            }
            for i, n in enumerate([*names, "CustomerConvertRequest"])
        }
    }
    assert misnamed_request_bodies(doc) == [f"POST /x{i}: {n}" for i, n in enumerate(names)]
