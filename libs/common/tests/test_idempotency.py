"""Idempotency-Key: a retried write happens once and answers as the first time."""

import asyncio
import types
import uuid

import httpx
import pytest
from crm_common import idempotency
from crm_common.auth import TokenVerifier
from crm_common.errors import ProblemError, install_problem_handlers
from fastapi import FastAPI, Request
from sqlalchemy import func, insert, select


@pytest.fixture
async def client(db, effects, signing_key):
    async with db.engine.begin() as conn:
        await conn.run_sync(idempotency.metadata.create_all)
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(idempotency.IdempotencyMiddleware)
    app.state.runtime = types.SimpleNamespace(db=db)
    app.state.token_verifier = TokenVerifier(lambda: signing_key[1], issuer="crm-gateway", audience="crm")

    @app.post("/things", status_code=201)
    async def create(request: Request, payload: dict):
        if payload.get("fail"):
            raise ProblemError(409, "THING_CONFLICT", "no")
        if payload.get("crash"):
            raise RuntimeError("boom")
        if payload.get("slow"):
            await asyncio.sleep(0.3)
        thing_id = uuid.uuid4()
        async with db.transaction() as s:
            await s.execute(insert(effects).values(event_id=thing_id))
        return {"id": str(thing_id)}

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        c.count = lambda: _count(db, effects)
        yield c


async def _count(db, effects):
    async with db.transaction() as s:
        return (await s.execute(select(func.count()).select_from(effects))).scalar_one()


async def test_a_retry_with_the_same_key_and_body_replays_the_first_response(client, auth_headers):
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-1"}
    first = await client.post("/things", json={"a": 1}, headers=headers)
    again = await client.post("/things", json={"a": 1}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await client.count() == 1


async def test_the_same_key_with_another_body_is_422(client, auth_headers):
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-2"}
    await client.post("/things", json={"a": 1}, headers=headers)
    other = await client.post("/things", json={"a": 2}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await client.count() == 1


async def test_keys_belong_to_their_caller(client, auth_headers):
    body = {"a": 1}
    one = await client.post(
        "/things", json=body, headers={**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "same"}
    )
    two = await client.post(
        "/things", json=body, headers={**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "same"}
    )
    assert one.json() != two.json()
    assert await client.count() == 2


async def test_client_errors_are_replayed_and_server_errors_free_the_key(client, auth_headers):
    user = auth_headers(user_id=uuid.uuid4())
    conflict = await client.post("/things", json={"fail": True}, headers={**user, "Idempotency-Key": "k-4"})
    replay = await client.post("/things", json={"fail": True}, headers={**user, "Idempotency-Key": "k-4"})
    assert conflict.status_code == replay.status_code == 409
    assert replay.headers["idempotent-replayed"] == "true"
    crash = await client.post("/things", json={"crash": True}, headers={**user, "Idempotency-Key": "k-5"})
    assert crash.status_code == 500
    retry = await client.post("/things", json={"crash": True}, headers={**user, "Idempotency-Key": "k-5"})
    assert retry.status_code == 500 and "idempotent-replayed" not in retry.headers


async def test_a_retry_while_the_first_still_runs_is_409(client, auth_headers):
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-6"}
    first, second = await asyncio.gather(
        client.post("/things", json={"slow": True}, headers=headers),
        _later(client.post("/things", json={"slow": True}, headers=headers)),
    )
    assert first.status_code == 201
    assert second.status_code == 409 and second.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert await client.count() == 1


async def _later(coro):
    await asyncio.sleep(0.1)
    return await coro


async def test_without_a_key_or_a_valid_token_nothing_is_remembered(client, auth_headers):
    plain = auth_headers(user_id=uuid.uuid4())
    await client.post("/things", json={"a": 1}, headers=plain)
    await client.post("/things", json={"a": 1}, headers=plain)
    await client.post(
        "/things", json={"a": 1}, headers={"Idempotency-Key": "k-7", "Authorization": "Bearer junk"}
    )
    assert await client.count() == 3
    too_long = await client.post("/things", json={"a": 1}, headers={**plain, "Idempotency-Key": "x" * 300})
    assert too_long.status_code == 422 and too_long.json()["code"] == "INVALID_IDEMPOTENCY_KEY"
