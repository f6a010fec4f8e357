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
