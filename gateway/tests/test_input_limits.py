"""Bounds on what a client may send: every out-of-range number and every over-long repeated filter is
a 422 problem naming the parameter, on every list the merged OpenAPI document describes."""

import uuid

import pytest
from crm_common.pagination import MAX_FILTER_VALUES, MAX_PAGE, unbounded_list_queries
from crm_common.schemas import unguarded_bodies
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def crm(tmp_path):
    settings = GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD, admin_email="boss@example.com")
    app = create_embedded_app(settings)
    async with running(app) as client:
        r = await client.post(
            "/api/v1/auth/token", data={"username": "boss@example.com", "password": PASSWORD}
        )
        client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        client.app = app
        yield client


def _operations(doc: dict, method: str = "get"):
    for path, item in doc["paths"].items():
        if method in item:
            # Query parameters are validated before the handler looks the path's ids up.
            yield path.format_map(_AnyId()), item[method]


class _AnyId(dict):
    def __missing__(self, key):
        return str(uuid.uuid4())


def _assert_names(r, parameter: str) -> None:
    assert r.status_code == 422, (r.request.url, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 422 and body["code"] == "VALIDATION_ERROR"
    assert parameter in [e["field"] for e in body["errors"]], body


async def test_page_numbers_beyond_the_bound_are_422_on_every_list(crm):
    doc = (await crm.get("/openapi.json")).json()
    lists = [
        (path, op)
        for path, op in _operations(doc)
        if any(p["name"] == "page" and p["in"] == "query" for p in op.get("parameters", []))
    ]
    # Every paged list of every service, plus the gateway's users, teams and view data.
    assert len(lists) >= 14, [p for p, _ in lists]
    for path, op in lists:
        page = next(p for p in op["parameters"] if p["name"] == "page")
        assert page["schema"]["maximum"] == MAX_PAGE, path
        for too_far in (2**63 - 1, MAX_PAGE + 1, 0):
            _assert_names(await crm.get(path, params={"page": too_far}), "page")


async def test_the_last_page_allowed_is_an_empty_page_not_an_error(crm):
    r = await crm.get("/api/v1/invoices", params={"page": MAX_PAGE, "pageSize": 200})
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [] and r.json()["page"] == MAX_PAGE
    r = await crm.get("/api/v1/views/customer-list/data", params={"page": MAX_PAGE})
    assert r.status_code == 200, r.text
    _assert_names(await crm.get("/api/v1/views/customer-list/data", params={"page": 2**63}), "page")


def _value(schema: dict):
    items = schema.get("items", {})
    if "enum" in items:
        return items["enum"][0]
    if items.get("format") == "uuid":
        return str(uuid.uuid4())
    return "x"


async def test_every_repeated_filter_is_bounded_and_one_more_value_is_a_422(crm):
    doc = (await crm.get("/openapi.json")).json()
    seen = 0
    for path, op in _operations(doc):
        for parameter in op.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] != "query" or schema.get("type") != "array":
                continue
            seen += 1
            limit = schema.get("maxItems")
            assert limit, f"{path} ?{parameter['name']} takes any number of values"
            too_many = [(parameter["name"], _value(schema))] * (limit + 1)
            _assert_names(await crm.get(path, params=too_many), parameter["name"])
    assert seen >= 20


async def test_as_many_values_as_allowed_are_served(crm):
    # The reproduction was 11 copies of one value on the list and on the export.
    at_limit = [("type", "COMPANY")] * MAX_FILTER_VALUES
    for path in ("/api/v1/customers", "/api/v1/customers/export", "/api/v1/views/customer-list/data"):
        r = await crm.get(path, params=at_limit)
        assert r.status_code == 200, (path, r.text)
        _assert_names(await crm.get(path, params=[*at_limit, ("type", "COMPANY")]), "type")


async def test_no_route_declares_a_repeatable_query_parameter_without_a_bound(crm):
    apps = [crm.app, *crm.app.state.services.values()]
    assert [route for app in apps for route in unbounded_list_queries(app)] == []


async def test_every_request_body_is_built_on_the_guarded_request_model(crm):
    # Nesting, NUL characters and JSON types are checked there (crm_common.input_guard).
    apps = [crm.app, *crm.app.state.services.values()]
    assert [body for app in apps for body in unguarded_bodies(app)] == []


async def test_the_action_api_refuses_hostile_bodies_like_every_service(crm):
    deep = '{"action": "create", "data": ' + "[" * 50_000 + "]" * 50_000 + "}"
    for content in (deep, '{"action": "create\u0000"}'):
        r = await crm.post(
            "/api/v1/actions/customer-manager", content=content, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 422
