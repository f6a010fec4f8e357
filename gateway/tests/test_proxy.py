"""The distributed mode's HTTP upstream: limits, streaming, timeouts, unreachable services."""

import asyncio

import httpx
import pytest
from aiohttp import web
from crm_common.errors import install_problem_handlers
from crm_gateway.proxy import HttpUpstream
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
