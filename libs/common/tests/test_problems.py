"""Every error a client can see is an RFC 9457 problem document with a stable code."""

import json
import sqlite3

import httpx
import pytest
import sqlalchemy as sa
from crm_common.db import LockWaitTimeout
from crm_common.errors import DomainError, ProblemError, install_problem_handlers, problem_response
from crm_common.observability import install_observability
from crm_common.pagination import PageParams, page_params
from crm_common.schemas import StrictApiModel
from fastapi import Depends, FastAPI
from pydantic import Field
from sqlalchemy.exc import DBAPIError


class ThingLocked(DomainError):
    status, code = 409, "THING_LOCKED"


class Thing(StrictApiModel):
    display_name: str = Field(min_length=1)
    count: int


def make_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_observability(app, "test")

    @app.post("/things")
    async def create(thing: Thing) -> Thing:
        return thing

    @app.get("/conflict")
    async def conflict():
        raise ProblemError(409, "THING_EXISTS", "A thing with that name exists.")

    @app.get("/locked")
    async def locked():
        raise ThingLocked("The thing is locked.", extra={"lockedBy": "someone"})

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internals")

    @app.get("/pages")
    async def pages(params: PageParams = Depends(page_params)):
        return {"page": params.page}

    return app


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_problem_error_becomes_problem_json_with_code():
    async with client() as c:
        r = await c.get("/conflict", headers={"X-Request-ID": "abc123"})
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "THING_EXISTS"
    assert body["title"] == "Conflict"
    assert body["status"] == 409
    assert body["detail"] == "A thing with that name exists."
    assert body["instance"] == "/conflict"
    assert body["requestId"] == "abc123"
    assert r.headers["x-request-id"] == "abc123"


async def test_validation_errors_list_fields_in_camel_case_without_fastapi_shape():
    async with client() as c:
        r = await c.post("/things", json={"displayName": "", "count": "many", "extra": 1})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert "detail" in body and not isinstance(body["detail"], list)
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"displayName", "count", "extra"}
    assert all(e["message"] and e["code"] for e in body["errors"])


async def test_malformed_json_is_a_422_problem():
    async with client() as c:
        r = await c.post("/things", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["code"] == "VALIDATION_ERROR"


async def test_query_parameter_limits_are_problems():
    async with client() as c:
        r = await c.get("/pages", params={"pageSize": 500})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "pageSize"


async def test_unknown_route_and_method_are_problems():
    async with client() as c:
        missing = await c.get("/nope")
        wrong_method = await c.delete("/things")
    assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "METHOD_NOT_ALLOWED")
    assert missing.headers["content-type"] == "application/problem+json"


async def test_unexpected_errors_are_500_problems_that_leak_nothing():
    async with client() as c:
        r = await c.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "INTERNAL_ERROR"
    assert "secret" not in r.text


async def test_a_request_id_is_made_when_the_client_sends_none():
    async with client() as c:
        r = await c.get("/conflict")
    assert len(r.headers["x-request-id"]) >= 16
    assert r.json()["requestId"] == r.headers["x-request-id"]


def test_an_extra_member_cannot_replace_a_standard_one():
    # `status` is the HTTP status; a record's status travels as `currentStatus`.
    for member in ("status", "code", "title", "type", "errors"):
        with pytest.raises(ValueError, match=member):
            ProblemError(409, "INVALID_STATUS_TRANSITION", extra={member: "CANCELLED"})
    error = ProblemError(409, "INVALID_STATUS_TRANSITION", extra={"currentStatus": "CANCELLED"})
    assert error.extra == {"currentStatus": "CANCELLED"}


async def test_problem_documents_keep_their_status_whatever_extra_members_are_passed():
    r = problem_response(None, 409, "X", "d", extra={"status": "CANCELLED", "currentStatus": "CANCELLED"})
    body = json.loads(r.body)
    assert (r.status_code, body["status"], body["currentStatus"]) == (409, 409, "CANCELLED")


async def test_a_domain_error_is_answered_with_its_class_status_and_code():
    async with client() as c:
        r = await c.get("/locked")
    assert r.status_code == 409
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert (body["status"], body["code"], body["title"]) == (409, "THING_LOCKED", "Conflict")
    assert (body["detail"], body["lockedBy"]) == ("The thing is locked.", "someone")


def test_a_domain_error_is_a_problem_error_so_batches_report_it_per_item():
    exc = ThingLocked("locked")
    assert isinstance(exc, ProblemError)
    assert (exc.status, exc.code, exc.detail) == (409, "THING_LOCKED", "locked")


def _database_error(path, statement: str) -> DBAPIError:
    """The error SQLAlchemy raises for `statement` on the SQLite file at `path`, waiting for no lock."""
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement} ran")


async def test_a_write_that_gave_up_waiting_for_a_lock_is_overloaded_other_database_errors_are_500(tmp_path):
    path = tmp_path / "locks.db"
    with sqlite3.connect(path, isolation_level=None) as setup:
        setup.execute("CREATE TABLE t (a INTEGER PRIMARY KEY)")
        setup.execute("INSERT INTO t VALUES (1)")
    duplicate = _database_error(path, "INSERT INTO t VALUES (1)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: SQLite's busy timeout runs out
    try:
        busy = _database_error(path, "INSERT INTO t VALUES (2)")
    finally:
        holder.close()
    app = make_app()
    for name, error in {"busy": busy, "turn": LockWaitTimeout("no turn"), "duplicate": duplicate}.items():

        async def fail(error=error):
            raise error

        app.add_api_route(f"/db/{name}", fail)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        answers = {name: await c.get(f"/db/{name}") for name in ("busy", "turn", "duplicate")}
    for name in ("busy", "turn"):
        r = answers[name]
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "OVERLOADED" and r.headers["Retry-After"] == "1"
    r = answers["duplicate"]
    assert r.status_code == 500 and r.json()["code"] == "INTERNAL_ERROR"
    assert "INSERT" not in r.text
