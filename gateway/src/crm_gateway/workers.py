"""`crm up --workers N`: the embedded default on more than one core.

The process `crm up` starts (the main process) migrates, then starts N serving workers
(`ServingWorkers`), each listening on the port with SO_REUSEPORT, so the kernel spreads the
connections over them (on Linux; elsewhere one worker may take most); it serves no request itself.
A serving worker (`settings.background_work` off) serves requests and writes its outboxes; after
each commit that wrote one it tells the main process which outbox grew (`RelayWakeups`, one byte on
a pipe), and likewise when its API queued a webhook delivery. The main process relays every outbox,
consumes the events, delivers webhooks and runs the periodic jobs, as a lone `crm up` does: beside
the requests, on a core of its own. The writers of all processes take turns on each SQLite file
(crm_common.db: a lock file beside it).

The main process starts a serving worker again when one dies; a serving worker whose main process
has gone stops by itself. A graceful stop (SIGTERM, `crm down`, Ctrl+C) stops the serving workers
before anything else (each finishes its requests in flight), then the main process sends what the
outboxes hold, as a lone process does.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping

from crm_common.events.relay import backoff

from crm_gateway.settings import SERVICES

log = logging.getLogger("crm.workers")

# What a serving worker wakes in the main process, numbered for the one-byte wake-up: the relay of
# each app's outbox, and webhook-svc's delivery loop (a redelivery asked through the API).
DELIVERIES = "webhook-deliveries"
WAKEABLE = ("gateway", *SERVICES, DELIVERIES)
CHECK_SECONDS = 1.0
YOUNG_SECONDS = 30.0
STOP_SECONDS = 20.0


class ServingWorkers:
    """The main process's side: starts, watches and stops the serving workers."""

    def __init__(self, count: int, host: str, port: int) -> None:
        self.count = count
        self.host, self.port = host, port
        # Held until the workers have stopped: no other program takes the port meanwhile.
        self.reserved = bound(host, port)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._wakers: Mapping[str, Callable[[], None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, wakers: Mapping[str, Callable[[], None]]) -> None:
        """`wakers[name]()` wakes, in this process, what `name` in WAKEABLE names."""
        self._wakers = wakers
        asyncio.get_running_loop().add_reader(self._wake_read, self._woken)
        self.processes = [self._spawn() for _ in range(self.count)]
        self._watch = asyncio.create_task(self._keep_running(), name="crm-serving-workers")
        log.info("started %d serving worker(s): %s", self.count, [p.pid for p in self.processes])

    def _spawn(self) -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "crm_gateway.cli", "up"),
                *("--host", self.host, "--port", str(self.port)),
                *("--serving", f"{os.getpid()},{self._wake_write}"),
            ],
            pass_fds=(self._wake_write,),
            # Its own process group: a terminal's Ctrl+C reaches the main process, which stops it once.
            start_new_session=True,
        )

    def _woken(self) -> None:
        try:
            data = os.read(self._wake_read, 4096)
        except BlockingIOError:
            return
        for index in set(data):
            if index < len(WAKEABLE) and (wake := self._wakers.get(WAKEABLE[index])) is not None:
                wake()

    async def _keep_running(self) -> None:
        loop = asyncio.get_running_loop()
        started = [loop.time()] * len(self.processes)
        # Workers in a row that died young (a port taken, a broken install): wait longer each time
        # rather than start one every second.
        young_deaths = 0
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            for i, process in enumerate(self.processes):
                if process.poll() is None or self._stopping:
                    continue
                young_deaths = young_deaths + 1 if loop.time() - started[i] < YOUNG_SECONDS else 0
                wait = backoff(young_deaths, cap=60) if young_deaths > 1 else 0.0
                log.warning(
                    "serving worker %d exited with %s; starting another in %.0f s",
                    *(process.pid, process.returncode, wait),
                )
                await asyncio.sleep(wait)
                self.processes[i] = self._spawn()
                started[i] = loop.time()

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM to each (they finish the requests in flight), then wait; killed past `timeout`."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for process in self.processes:
            try:
                await asyncio.to_thread(process.wait, max(0.0, deadline - loop.time()))
            except subprocess.TimeoutExpired:
                log.warning("serving worker %d did not stop within %.0f s; killed", process.pid, timeout)
                process.kill()
                await asyncio.to_thread(process.wait)
        loop.remove_reader(self._wake_read)
        # Wake-ups written before the workers stopped: their rows are relayed by the drain that follows.
        self._woken()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self.reserved.close()


def bound(host: str, port: int) -> socket.socket:
    """A socket bound to the port with SO_REUSEPORT. Not listening, it is handed no connection, and
    it keeps the port from any program that does not share it (only our workers do)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def listening(host: str, port: int) -> socket.socket:
    """A serving worker's own listening socket on the shared port."""
    sock = bound(host, port)
    sock.listen(2048)
    return sock


class RelayWakeups:
    """A serving worker's side: tells the main process what to wake (whose outbox grew, a queued
    webhook delivery), and stops this process when the main process is gone."""

    def __init__(self, main_process: int, wake_fd: int) -> None:
        self.main_process = main_process
        self.fd = wake_fd
        os.set_blocking(wake_fd, False)

    def waker(self, name: str) -> Callable[[], None]:
        byte = bytes([WAKEABLE.index(name)])

        def wake() -> None:
            # A full pipe already holds wake-ups for the main process to read; a closed one means it
            # has gone, which `watch_main_process` acts on. Either way the row waits in the outbox.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self.fd, byte)

        return wake

    async def watch_main_process(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if os.getppid() != self.main_process:
                break
        log.warning("the main process (%d) has gone; stopping", self.main_process)
        # uvicorn's own handler: the requests in flight finish, then the lifespan closes.
        signal.raise_signal(signal.SIGTERM)
