"""The distributed mode's HTTP upstream: limits, streaming, timeouts, unreachable services."""

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web
from crm_common.errors import install_problem_handlers
from crm_gateway.proxy import HttpUpstream, retry_after_seconds
from fastapi import FastAPI


@pytest.fixture
async def upstream_url(unused_tcp_port):
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "size": len(body),
                "path": request.path,
                "query": request.query_string,
                "rid": request.headers.get("x-request-id"),
            }
        )

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/csv"})
        await response.prepare(request)
        for i in range(1000):
            await response.write(f"{i},row\n".encode())
        await response.write_eof()
        return response

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/api/v1/customers/import", echo)
    app.router.add_get("/api/v1/customers/export", export)
    app.router.add_route("*", "/api/v1/customers", echo)
    app.router.add_get("/api/v1/customers/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield f"http://127.0.0.1:{unused_tcp_port}"
    await runner.cleanup()


async def client_for(url: str, **limits) -> tuple[httpx.AsyncClient, HttpUpstream]:
    upstream = HttpUpstream(
        url, timeout=limits.pop("timeout", 1.0), max_body_bytes=1000, max_bulk_body_bytes=5_000_000, **limits
    )
    await upstream.start()
    app = FastAPI()
    install_problem_handlers(app)
    app.mount("/", upstream)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw"), upstream


async def test_requests_pass_through_with_query_and_headers(upstream_url):
    client, upstream = await client_for(upstream_url)
    async with client:
        r = await client.post("/api/v1/customers?x=1", content=b"hello", headers={"x-request-id": "r-1"})
    await upstream.close()
    assert r.json() == {"size": 5, "path": "/api/v1/customers", "query": "x=1", "rid": "r-1"}


async def test_an_oversized_body_is_413_and_bulk_paths_stream_larger_ones(upstream_url):
    client, upstream = await client_for(upstream_url)
    async with client:
        small_path = await client.post("/api/v1/customers", content=b"x" * 5000)
        bulk = await client.post("/api/v1/customers/import", content=b"x" * 3_000_000)
        too_big_bulk = await client.post("/api/v1/customers/import", content=b"x" * 6_000_000)
        export = await client.get("/api/v1/customers/export")
    await upstream.close()
    assert small_path.status_code == 413 and small_path.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert bulk.status_code == 200 and bulk.json()["size"] == 3_000_000
    assert too_big_bulk.status_code == 413
    assert export.text.count("\n") == 1000


async def test_a_slow_service_is_504_and_a_missing_one_502(upstream_url, unused_tcp_port_factory):
    client, upstream = await client_for(upstream_url, timeout=0.3)
    async with client:
        slow = await client.get("/api/v1/customers/slow")
    await upstream.close()
    assert slow.status_code == 504 and slow.json()["code"] == "UPSTREAM_TIMEOUT"
    client, upstream = await client_for(f"http://127.0.0.1:{unused_tcp_port_factory()}")
    async with client:
        gone = await client.get("/api/v1/customers")
    await upstream.close()
    assert gone.status_code == 502 and gone.json()["code"] == "UPSTREAM_UNAVAILABLE"


@pytest.fixture
async def restarting_service(unused_tcp_port):
    """A service that drops the first connection it gets (as one going down for a restart does),
    then answers normally."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b" ", 1)[0].decode())
        if len(seen) == 1:
            writer.transport.abort()
            return
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        if length:
            await reader.readexactly(length)
        body = b'{"ok": true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", unused_tcp_port)
    yield f"http://127.0.0.1:{unused_tcp_port}", seen
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(
    ("method", "headers", "status", "attempts"),
    [
        ("GET", {}, 200, 2),
        ("POST", {"Idempotency-Key": "k-1"}, 200, 2),
        # A write without a key may have been applied before the connection dropped: not repeated.
        ("POST", {}, 502, 1),
    ],
)
async def test_a_dropped_connection_is_retried_once_when_that_is_safe(
    restarting_service, method, headers, status, attempts
):
    url, seen = restarting_service
    client, upstream = await client_for(url)
    async with client:
        r = await client.request(
            method, "/api/v1/customers", headers=headers, json={} if method == "POST" else None
        )
    await upstream.close()
    assert r.status_code == status, r.text
    assert seen == [method] * attempts


async def test_a_service_that_keeps_failing_trips_the_circuit_and_is_probed_again(unused_tcp_port_factory):
    port = unused_tcp_port_factory()
    client, upstream = await client_for(f"http://127.0.0.1:{port}")
    upstream.circuit.reset_after = 0.5
    async with client:
        for _ in range(upstream.circuit.failure_threshold):
            r = await client.get("/api/v1/customers")
            assert r.status_code == 502 and r.json()["code"] == "UPSTREAM_UNAVAILABLE"
        started = asyncio.get_running_loop().time()
        fast = await client.get("/api/v1/customers")
        assert asyncio.get_running_loop().time() - started < 0.05
        assert fast.status_code == 503 and fast.json()["code"] == "SERVICE_UNAVAILABLE"
        assert int(fast.headers["retry-after"]) >= 1

        # The service comes back: after the reset time one probe goes through and closes the circuit.
        async def ok(request: web.Request) -> web.Response:
            return web.json_response({"back": True})

        app = web.Application()
        app.router.add_get("/api/v1/customers", ok)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await asyncio.sleep(0.6)
            assert (await client.get("/api/v1/customers")).json() == {"back": True}
            assert not upstream.circuit.is_open
            assert (await client.get("/api/v1/customers")).status_code == 200
        finally:
            await runner.cleanup()
    await upstream.close()


@pytest.fixture
async def overloaded_service(unused_tcp_port):
    """A service whose admission control refuses the first `refusals` requests (503 OVERLOADED with
    the given `Retry-After`), then serves; it notes when each request arrived."""
    state = {"refusals": 1, "retry_after": "1", "code": "OVERLOADED"}
    arrivals: list[tuple[str, float]] = []

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append((request.method, asyncio.get_running_loop().time()))
        if len(arrivals) <= state["refusals"]:
            return web.json_response(
                {"type": "about:blank", "title": "Service Unavailable", "status": 503, "code": state["code"]},
                status=503,
                headers={"Retry-After": state["retry_after"]},
                content_type="application/problem+json",
            )
        return web.json_response({"served": True})

    app = web.Application()
    app.router.add_route("*", "/api/v1/customers", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    yield f"http://127.0.0.1:{unused_tcp_port}", state, arrivals
    await runner.cleanup()


@pytest.mark.parametrize(
    ("method", "headers", "status", "attempts"),
    [
        ("GET", {}, 200, 2),
        ("POST", {"Idempotency-Key": "k-1"}, 200, 2),
        # A write without a key is the client's to retry (its refusal changed nothing, but the
        # gateway does not repeat writes that are not marked safe to repeat).
        ("POST", {}, 503, 1),
    ],
)
async def test_a_safe_request_refused_as_overload_is_retried_after_retry_after(
    overloaded_service, method, headers, status, attempts
):
    url, _, arrivals = overloaded_service
    client, upstream = await client_for(url, overload_retry_seconds=1.5)
    async with client:
        r = await client.request(
            method, "/api/v1/customers", headers=headers, json={} if method == "POST" else None
        )
    await upstream.close()
    assert r.status_code == status, r.text
    assert [m for m, _ in arrivals] == [method] * attempts
    if attempts == 2:
        assert r.json() == {"served": True}
        assert arrivals[1][1] - arrivals[0][1] >= 1.0  # not sooner than the service asked
    else:
        assert r.json()["code"] == "OVERLOADED" and r.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("budget", "retry_after", "code"),
    [
        (1.5, "5", "OVERLOADED"),  # the wait asked for is past the budget: the client waits, not the gateway
        (0.0, "1", "OVERLOADED"),  # the default: refusals go straight to the client
        (1.5, "1", "CUSTOMER_SERVICE_UNAVAILABLE"),  # not an admission refusal: not the gateway's to retry
    ],
)
async def test_a_refusal_the_gateway_will_not_wait_for_reaches_the_client_with_its_retry_after(
    overloaded_service, budget, retry_after, code
):
    url, state, arrivals = overloaded_service
    state.update(retry_after=retry_after, code=code)
    client, upstream = await client_for(url, overload_retry_seconds=budget)
    async with client:
        r = await client.get("/api/v1/customers")
    await upstream.close()
    assert r.status_code == 503 and r.json()["code"] == code
    assert r.headers["retry-after"] == retry_after
    assert len(arrivals) == 1


async def test_a_service_still_overloaded_on_the_retry_answers_the_client_with_its_refusal(
    overloaded_service,
):
    url, state, arrivals = overloaded_service
    state["refusals"] = 2
    client, upstream = await client_for(url, overload_retry_seconds=1.5)
    async with client:
        r = await client.get("/api/v1/customers")
    await upstream.close()
    assert r.status_code == 503 and r.json()["code"] == "OVERLOADED" and r.headers["retry-after"] == "1"
    assert len(arrivals) == 2  # one retry, never more


async def test_overload_refusals_do_not_trip_the_circuit(overloaded_service):
    url, state, arrivals = overloaded_service
    state["refusals"] = 100
    client, upstream = await client_for(url)
    async with client:
        answers = [
            await client.get("/api/v1/customers") for _ in range(upstream.circuit.failure_threshold + 2)
        ]
    await upstream.close()
    # An overloaded service is alive: every request reached it and its own refusal came back.
    assert [(r.status_code, r.json()["code"]) for r in answers] == [(503, "OVERLOADED")] * len(answers)
    assert len(arrivals) == len(answers)
    assert not upstream.circuit.is_open


def test_retry_after_is_read_as_seconds_or_as_a_date():
    assert retry_after_seconds("3") == 3.0
    later = retry_after_seconds(format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True))
    assert later is not None and 25 < later <= 30
    assert retry_after_seconds(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
