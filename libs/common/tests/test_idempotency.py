"""Idempotency-Key: a retried write happens once and answers as the first time."""

import asyncio
import types
import uuid

import httpx
import pytest
from crm_common import idempotency, idempotency_store
from crm_common.app import SessionDep
from crm_common.auth import TokenVerifier
from crm_common.errors import ProblemError, install_problem_handlers
from crm_common.testing.plugin import eventually
from fastapi import Depends, FastAPI, Request, Response
from sqlalchemy import func, insert, select

STREAMED = "/stream"


async def _pause(request: Request) -> None:
    """Before the request's transaction opens (dependencies resolve in order)."""
    if request.query_params.get("pause"):
        await asyncio.sleep(float(request.query_params["pause"]))


@pytest.fixture
async def client(db, effects, signing_key):
    async with db.engine.begin() as conn:
        await conn.run_sync(idempotency.metadata.create_all)
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(idempotency.IdempotencyMiddleware, streamed={STREAMED})
    app.state.runtime = types.SimpleNamespace(db=db)
    app.state.token_verifier = TokenVerifier(lambda: signing_key[1], issuer="crm-gateway", audience="crm")

    @app.post("/things", status_code=201, dependencies=[Depends(_pause)])
    async def create(payload: dict, session: SessionDep, response: Response):
        thing_id = uuid.uuid4()
        # Written first: a failure below must take it back.
        await session.execute(insert(effects).values(event_id=thing_id))
        if payload.get("fail"):
            raise ProblemError(409, "THING_CONFLICT", "no")
        if payload.get("crash"):
            raise RuntimeError("boom")
        if payload.get("slow"):
            app.state.inside.set()
            if app.state.hold is None:
                await asyncio.sleep(0.3)
            else:
                await asyncio.wait_for(app.state.hold.wait(), 10)
        response.headers["Location"] = f"/things/{thing_id}"
        return {"id": str(thing_id)}

    @app.post(STREAMED)
    async def stream(request: Request):
        """Like the customer import: reads the body as it comes, commits on its own."""
        seen, first_seen_at = 0, None
        async for chunk in request.stream():
            if chunk and first_seen_at is None:
                first_seen_at = app.state.sent()
            seen += len(chunk)
        async with db.transaction() as s:
            await s.execute(insert(effects).values(event_id=uuid.uuid4()))
        return {"bytes": seen, "chunksSentBeforeTheFirstArrived": first_seen_at}

    app.state.sent = lambda: None
    # A slow request says when it is inside its transaction, and holds it until `hold` is set if
    # there is one (else 0.3 s).
    app.state.inside = asyncio.Event()
    app.state.hold = None

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        c.count = lambda: _count(db, effects)
        c.app = app
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
    assert again.headers["location"] == first.headers["location"]
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
    # Both rolled back what they had written.
    assert await client.count() == 0


async def test_a_retry_while_the_first_still_runs_is_409(client, auth_headers):
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-6"}
    first, second = await asyncio.gather(
        client.post("/things?pause=0.3", json={}, headers=headers),
        _later(client.post("/things?pause=0.3", json={}, headers=headers)),
    )
    assert first.status_code == 201
    assert second.status_code == 409 and second.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert await client.count() == 1


async def test_a_retry_while_the_first_is_in_its_transaction(client, db, auth_headers):
    """On SQLite the retry's claim waits for the writer ahead of it and so replays its outcome; on
    Postgres it finds the key in flight. Either way the change happens once."""
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-6b"}
    state = client.app.state
    if not db.is_sqlite:
        # The first keeps its transaction open until the retry is answered, however slow the
        # machine (on SQLite the retry waits for the first's commit, so it cannot hold for it).
        state.hold = asyncio.Event()

    async def retry():
        await state.inside.wait()
        try:
            return await client.post("/things", json={"slow": True}, headers=headers)
        finally:
            if state.hold is not None:
                state.hold.set()

    first, second = await asyncio.gather(
        client.post("/things", json={"slow": True}, headers=headers), retry()
    )
    assert first.status_code == 201
    if db.is_sqlite:
        assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
        assert second.json() == first.json()
    else:
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


async def test_the_outcome_is_committed_with_the_change_before_the_response_leaves(client, db, auth_headers):
    """What kill -9 right after a response would leave: the key's outcome is already in the
    database with the change, so a retry after a crash replays instead of running again. (Raw ASGI,
    to look at the database at the moment the response starts.)"""
    user = auth_headers(user_id=uuid.uuid4())
    body = b'{"a": 1}'
    headers = [(k.lower().encode(), v.encode()) for k, v in {**user, "Idempotency-Key": "k-9"}.items()]
    headers.append((b"content-type", b"application/json"))
    at_start = {}

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            async with db.transaction(read_only=True) as s:
                row = (await s.execute(select(idempotency.keys).where(idempotency.keys.c.key == "k-9"))).one()
            at_start.update(status=row.status_code, effects=await client.count())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/things",
        "raw_path": b"/things",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
        "root_path": "",
        "app": client.app,
    }
    await client.app(scope, receive, send)
    assert at_start == {"status": 201, "effects": 1}


async def test_a_claim_left_by_a_dead_process_blocks_briefly_and_never_duplicates(
    client, db, auth_headers, monkeypatch
):
    user = uuid.uuid4()
    headers = {**auth_headers(user_id=user), "Idempotency-Key": "k-10", "Content-Type": "application/json"}
    # A process claimed the key and died before its transaction committed.
    await idempotency_store.claim(db, str(user), "k-10", _digest("/things", b'{"a":1}'))
    blocked = await client.post("/things", content=b'{"a":1}', headers=headers)
    assert blocked.status_code == 409 and blocked.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert blocked.headers["retry-after"] == "1"
    monkeypatch.setattr(idempotency_store, "LEASE", idempotency_store.LEASE * 0)
    retry = await client.post("/things", content=b'{"a":1}', headers=headers)
    assert retry.status_code == 201
    again = await client.post("/things", content=b'{"a":1}', headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == retry.json()
    assert await client.count() == 1


async def test_keys_in_flight_are_released_at_start(client, db, auth_headers):
    user = uuid.uuid4()
    await idempotency_store.claim(db, str(user), "k-11", _digest("/things", b'{"a":1}'))
    done = await client.post(
        "/things",
        content=b'{"a":1}',
        headers={**auth_headers(user_id=user), "Idempotency-Key": "k-12", "Content-Type": "application/json"},
    )
    assert await idempotency.release_abandoned(db) == 1
    retry = await client.post(
        "/things",
        content=b'{"a":1}',
        headers={**auth_headers(user_id=user), "Idempotency-Key": "k-11", "Content-Type": "application/json"},
    )
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    finished = await client.post(
        "/things",
        content=b'{"a":1}',
        headers={**auth_headers(user_id=user), "Idempotency-Key": "k-12", "Content-Type": "application/json"},
    )
    assert finished.headers["idempotent-replayed"] == "true" and finished.json() == done.json()
    assert await client.count() == 2


async def test_a_request_whose_claim_was_taken_over_rolls_back(client, auth_headers, monkeypatch):
    """A first attempt that stalls past the lease (before its transaction) is taken over by a
    retry; it then cannot commit, so the change happens once."""
    monkeypatch.setattr(idempotency_store, "LEASE", idempotency_store.LEASE * 0)
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-13"}
    stalled, retry = await asyncio.gather(
        client.post("/things?pause=0.5", json={}, headers=headers),
        _later(client.post("/things?pause=0.5", json={}, headers=headers)),
    )
    assert stalled.status_code == 409 and stalled.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
    assert retry.status_code == 201
    again = await client.post("/things?pause=0.5", json={}, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == retry.json()
    assert await client.count() == 1


def _digest(path: str, body: bytes) -> str:
    return idempotency._hash(b"\n".join([b"POST", path.encode(), b""]), body)


def _chunks(n: int, client, size: int = 64 * 1024):
    produced = 0
    client.app.state.sent = lambda: produced

    async def gen():
        nonlocal produced
        for _ in range(n):
            produced += 1
            yield b"x" * size

    return gen()


async def test_a_streamed_request_is_not_held_and_its_outcome_is_replayed(client, auth_headers):
    headers = {**auth_headers(user_id=uuid.uuid4()), "Idempotency-Key": "k-14"}
    first = await client.post(STREAMED, content=_chunks(50, client), headers=headers)
    assert first.status_code == 200
    # The endpoint had its first chunk long before the client sent the last one.
    assert first.json()["bytes"] == 50 * 64 * 1024
    assert first.json()["chunksSentBeforeTheFirstArrived"] <= 2
    again = await client.post(STREAMED, content=_chunks(50, client), headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    other = await client.post(STREAMED, content=_chunks(49, client), headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert await client.count() == 1


async def test_a_long_streamed_request_keeps_its_claim(client, db, auth_headers, monkeypatch):
    """A live streamed request renews its lease, so a retry never takes it over mid-way; its
    outcome is still stored under the renewed claim."""
    monkeypatch.setattr(idempotency_store, "LEASE", idempotency_store.LEASE / 10)
    user = uuid.uuid4()
    headers = {**auth_headers(user_id=user), "Idempotency-Key": "k-15"}

    async def claimed_at():
        async with db.transaction(read_only=True) as s:
            return (
                await s.execute(select(idempotency.keys.c.created_at).where(idempotency.keys.c.key == "k-15"))
            ).scalar_one_or_none()

    async def body():
        yield b"first"
        first = await eventually(claimed_at)
        renewed = await eventually(lambda: _later_than(claimed_at, first))
        assert renewed, "the claim was not renewed while the request ran"
        retry = await client.post(STREAMED, content=b"other", headers=headers)
        # Still held (not taken over), whatever the retry's body: it is compared once the first is done.
        assert retry.status_code == 409 and retry.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        yield b"last"

    first = await client.post(STREAMED, content=body(), headers=headers)
    assert first.status_code == 200 and first.json()["bytes"] == 9
    again = await client.post(STREAMED, content=b"firstlast", headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content


async def _later_than(read, when):
    now = await read()
    return now is not None and now > when
