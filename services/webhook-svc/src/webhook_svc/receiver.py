"""A small webhook receiver (an ASGI app on uvicorn, in the caller's event loop) for tests,
benchmarks and trying webhooks locally: it keeps every request it gets, answers a chosen status, and
can be stopped and started again on the same port to play a receiver that is down for a while."""

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived


@dataclass
class Receiver:
    host: str = "127.0.0.1"
    port: int = 0
    status: int = 200
    answer: bytes = b'{"ok": true}'
    # Seconds to wait before answering (a slow receiver).
    delay: float = 0.0
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Chooses the status per request (a receiver failing some events); `status` when None.
    status_for: Callable[[Received], int] | None = None
    received: list[Received] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hooks"

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        received = Received(headers, body, time.time())
        self.received.append(received)
        self._arrived.set()
        status = self.status if self.status_for is None else self.status_for(received)
        if self.delay:
            await asyncio.sleep(self.delay)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *self.extra_headers],
            }
        )
        await send({"type": "http.response.body", "body": self.answer})

    async def start(self) -> "Receiver":
        if self.port == 0:
            with socket.socket() as probe:
                probe.bind((self.host, 0))
                self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            self, host=self.host, port=self.port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        # In the caller's loop, without touching its signal handlers.
        self._server.capture_signals = _no_signals  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        """Down: the port refuses connections until start() again."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Until at least `count` requests have arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.received


class _NoSignals:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _no_signals():
    return _NoSignals()
