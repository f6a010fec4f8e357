"""What every request body is checked for beyond its schema (crm_common.input_guard), through the
shared request-model base and over HTTP as a client sees it."""

import json
from datetime import date, datetime
from decimal import Decimal

import httpx
import pytest
from crm_common import input_guard
from crm_common.errors import install_problem_handlers
from crm_common.schemas import StrictApiModel
from fastapi import FastAPI
from pydantic import AwareDatetime, ValidationError


class Inner(StrictApiModel):
    flag: bool = False


class Body(StrictApiModel):
    name: str = "x"
    when: AwareDatetime | None = None
    day: date | None = None
    version: int | None = None
    amount: Decimal | None = None
    active: bool | None = None
    extra_data: dict | None = None
    inner: list[Inner] = []


def nested(levels: int):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_loads_refuses_deep_json_without_recursing():
    assert input_guard.loads("[[1]]") == [[1]]
    assert input_guard.loads(b'{"a": "[[[[not brackets"}') == {"a": "[[[[not brackets"}
    assert input_guard.loads(json.dumps(nested(32))) == nested(32)
    for text in (json.dumps(nested(33)), "[" * 200_000 + "]" * 200_000, "[" * 200_000):
        with pytest.raises(input_guard.JsonTooDeep, match="deeper than 32"):
            input_guard.loads(text)
    with pytest.raises(json.JSONDecodeError):
        input_guard.loads("{nope")


def codes(exc: ValidationError) -> set[tuple[str, str]]:
    return {(".".join(map(str, e["loc"])), e["type"]) for e in exc.errors()}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"when": 1767225600}, ("when", "datetime_type")),
        ({"when": 1767225600.5}, ("when", "datetime_type")),
        ({"day": 20260101}, ("day", "date_type")),
        ({"active": 0}, ("active", "bool_type")),
        ({"active": "false"}, ("active", "bool_type")),
        ({"version": True}, ("version", "int_type")),
        ({"amount": False}, ("amount", "int_type")),
        ({"inner": [{"flag": 1}]}, ("inner.0.flag", "bool_type")),
        ({"name": "a\x00b"}, ("name", "string_nul")),
        ({"extra_data": {"k\x00": 1}}, ("extra_data", "string_nul")),
        ({"extra_data": {"k": nested(31)}}, ("extra_data", "json_too_deep")),
    ],
)
def test_request_models_refuse_what_lax_mode_would_coerce(body, error):
    with pytest.raises(ValidationError) as caught:
        Body.model_validate_json(json.dumps(body))
    assert error in codes(caught.value)


def test_request_models_take_what_is_meant():
    body = Body.model_validate_json(
        json.dumps(
            {
                "when": "2026-01-01T00:00:00Z",
                "day": "2026-01-01",
                "version": 3,
                "amount": "12.50",
                "active": True,
                "extraData": {"k": nested(30)},
                "inner": [{"flag": False}],
            }
        )
    )
    assert body.when == datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    assert (body.version, body.amount, body.active) == (3, Decimal("12.50"), True)
    # Python callers (CSV import rows, services) still pass strings where JSON would.
    assert Body(when="2026-01-01T00:00:00Z", version="3").version == 3


def app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/bodies")
    async def create(body: Body) -> dict:
        return {"ok": True}

    return app


async def test_over_http_each_refusal_is_a_422_problem_naming_the_field():
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        deep = '{"extraData": ' + "[" * 100_000 + "]" * 100_000 + "}"
        for content, field, code in [
            (deep, "body", "json_too_deep"),
            (json.dumps({"extraData": {"k": nested(31)}}), "extraData", "json_too_deep"),
            (json.dumps({"name": "\x00"}), "name", "string_nul"),
            (json.dumps({"active": 0}), "active", "bool_type"),
        ]:
            r = await c.post("/bodies", content=content, headers={"content-type": "application/json"})
            assert r.status_code == 422, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert (r.json()["status"], r.json()["code"]) == (422, "VALIDATION_ERROR")
            assert [(e["field"], e["code"]) for e in r.json()["errors"]] == [(field, code)]
        # 32 levels in all (the body, extraData, 30 lists) is the most there may be.
        assert (await c.post("/bodies", json={"extraData": {"k": nested(30)}})).status_code == 200


def test_the_route_checks_find_what_they_look_for_in_included_routers():
    from crm_common.pagination import any_of, unbounded_list_queries
    from crm_common.schemas import ApiModel, unguarded_bodies
    from fastapi import APIRouter, Query

    class Loose(ApiModel):
        name: str

    router = APIRouter(prefix="/things")

    @router.get("")
    async def listing(status: list[str] = Query([]), kind: list[str] = any_of()) -> dict:
        return {}

    @router.post("")
    async def create(body: Loose, other: Body | None = None) -> dict:
        return {}

    checked = FastAPI()
    checked.include_router(router)
    assert unbounded_list_queries(checked) == ["GET /things: status"]
    assert unguarded_bodies(checked) == [f"POST /things: {Loose}"]
