"""`Idempotency-Key` for retried writes: the same key and body return the first response; the same
key with another body is a 422; a retry while the first attempt still runs is a 409.

Keys are per caller (the verified token's subject) and kept for 24 hours. The record of a
finished request is written right after its own transaction committed; if the process dies in
between, the key is reusable once its in-flight mark is older than IN_FLIGHT_TIMEOUT.
"""

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_common.errors import ProblemError, problem_response
from crm_common.models import UtcDateTime

log = logging.getLogger("crm.idempotency")
HEADER = b"idempotency-key"
METHODS = {"POST", "PATCH", "PUT", "DELETE"}
RETENTION = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(seconds=60)
# Response headers worth replaying; the rest (dates, request ids) belong to the new response.
REPLAYED_HEADERS = {b"content-type", b"location", b"etag"}

metadata = sa.MetaData()
keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("principal", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer()),
    sa.Column("headers", sa.JSON()),
    sa.Column("body", sa.LargeBinary()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)


def create_idempotency_table_v1() -> None:
    """For a service's migration (a frozen snapshot)."""
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("headers", sa.JSON()),
        sa.Column("body", sa.LargeBinary()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def drop_idempotency_table_v1() -> None:
    op.drop_table("idempotency_keys")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS:
            return await self.app(scope, receive, send)
        key = _header(scope, HEADER)
        if key is None:
            return await self.app(scope, receive, send)
        request = Request(scope)
        if not 1 <= len(key) <= 255:
            return await problem_response(
                request, 422, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1 to 255 characters."
            )(scope, receive, send)
        principal = self._principal(scope)
        if principal is None:  # no valid token: the endpoint will answer 401; nothing to remember
            return await self.app(scope, receive, send)

        body = await _read_body(receive)
        digest = hashlib.sha256(
            b"\n".join(
                [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body]
            )
        ).hexdigest()
        db = scope["app"].state.runtime.db
        try:
            replay = await self._claim(db, principal, key, digest)
        except ProblemError as exc:
            return await problem_response(request, exc.status, exc.code, exc.detail)(scope, receive, send)
        if replay is not None:
            status, headers, stored = replay
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [*headers, (b"idempotent-replayed", b"true")],
                }
            )
            await send({"type": "http.response.body", "body": stored})
            return

        captured: dict = {"status": 500, "headers": [], "body": []}

        async def replay_body() -> Message:
            nonlocal body
            chunk, body = body, b""
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                    if k.lower() in REPLAYED_HEADERS
                ]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            await self._finish(db, principal, key, captured)

    @staticmethod
    def _principal(scope: Scope) -> str | None:
        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        try:
            return str(scope["app"].state.token_verifier.verify(token).id)
        except ProblemError:
            return None

    async def _claim(self, db, principal: str, key: str, digest: str):
        now = datetime.now(UTC)
        dialect = postgresql if not db.is_sqlite else sqlite
        async with db.transaction() as session:
            await session.execute(sa.delete(keys).where(keys.c.created_at < now - RETENTION))
            inserted = await session.execute(
                dialect.insert(keys)
                .values(principal=principal, key=key, request_hash=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=["principal", "key"])
            )
            if inserted.rowcount == 1:
                return None
            row = (
                await session.execute(
                    sa.select(keys).where(keys.c.principal == principal, keys.c.key == key).with_for_update()
                )
            ).one()
            if row.request_hash != digest:
                raise ProblemError(
                    422, "IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used with a different request."
                )
            if row.status_code is not None:
                headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in row.headers or []]
                return row.status_code, headers, row.body or b""
            if now - row.created_at < IN_FLIGHT_TIMEOUT:
                raise ProblemError(
                    409,
                    "IDEMPOTENCY_KEY_IN_USE",
                    "A request with this Idempotency-Key is still being processed.",
                )
            # The first attempt died mid-way: this retry takes the key over.
            await session.execute(
                sa.update(keys).where(keys.c.principal == principal, keys.c.key == key).values(created_at=now)
            )
            return None

    async def _finish(self, db, principal: str, key: str, captured: dict) -> None:
        where = (keys.c.principal == principal) & (keys.c.key == key)
        try:
            async with db.transaction() as session:
                if captured["status"] >= 500:
                    # Nothing was done (the request's transaction rolled back): let the client retry.
                    await session.execute(sa.delete(keys).where(where))
                else:
                    await session.execute(
                        sa.update(keys)
                        .where(where)
                        .values(
                            status_code=captured["status"],
                            headers=captured["headers"],
                            body=b"".join(captured["body"]),
                        )
                    )
        except Exception:
            log.exception("could not record the outcome of idempotency key %s", json.dumps(key))


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
