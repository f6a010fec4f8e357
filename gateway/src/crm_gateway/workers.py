"""`crm up --workers N`: the embedded default on more than one core.

The process `crm up` starts (the main process) migrates, then starts N serving workers
(`ServingWorkers`). It listens on the port itself and hands each connection it accepts to the worker
that holds the fewest open ones (the socket's descriptor, sent over a Unix socket pair). The kernel's
own spreading (SO_REUSEPORT) hashes connections: 16 keep-alive clients came out 11 and 5, and the
busier worker set every client's tail latency. The main process serves no request itself: it relays
every outbox, consumes the events, delivers webhooks and runs the periodic jobs, as a lone `crm up`
does, on a core of its own beside the requests.

A serving worker (`settings.background_work` off) serves the connections it is handed
(`HandedServer`) and writes its outboxes. Over the same socket pair (`MainProcessLink`) it tells the
main process which outbox grew after each commit that wrote one (one byte; the main process wakes that
relay), that its API queued a webhook delivery, and that a connection closed. The writers of all
processes take turns on each SQLite file (crm_common.db: a lock file beside it).

The main process starts a serving worker again when one dies; a serving worker whose main process has
gone (its end of the pair closed) stops by itself. A graceful stop (SIGTERM, `crm down`, Ctrl+C)
closes the port, stops the serving workers (each finishes its requests in flight), then the main
process sends what the outboxes hold, as a lone process does.
"""

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from crm_common.events.relay import backoff
from crm_common.settings import MULTIPROCESS_DIR
from prometheus_client import multiprocess

from crm_gateway.settings import SERVICES

log = logging.getLogger("crm.workers")

# What a serving worker wakes in the main process, numbered for the one-byte wake-up: the relay of
# each app's outbox, and webhook-svc's delivery loop (a redelivery asked through the API).
DELIVERIES = "webhook-deliveries"
WAKEABLE = ("gateway", *SERVICES, DELIVERIES)
# The byte a serving worker sends when a connection it was handed has closed.
CLOSED = 255
# The first byte the main process sends a serving worker: it has started, the worker may too.
GO = b"g"
CHECK_SECONDS = 1.0
YOUNG_SECONDS = 30.0
STOP_SECONDS = 20.0
ACCEPT_RETRY_SECONDS = 0.1


@dataclass
class _Worker:
    process: "subprocess.Popen[bytes]"
    channel: socket.socket  # the main process's end of the pair
    open: int = 0  # connections handed over and not yet closed


class ServingWorkers:
    """The main process's side: listens on the port, hands the connections over, and starts, watches
    and stops the serving workers."""

    def __init__(self, count: int, host: str, port: int) -> None:
        self.count = count
        # Bound and listening from here on: connections wait in its backlog until a worker is up.
        self.listener = listening(host, port)
        self.workers: list[_Worker] = []
        self._wakers: Mapping[str, Callable[[], None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._turn = 0

    def spawn(self) -> None:
        """Starts the serving workers' processes early: each imports its code while this process
        builds and starts its own, then waits for `start` before it builds its apps (after this
        process has made what they share: the signing key, the migrated databases)."""
        self.workers = [self._spawn() for _ in range(self.count)]

    async def start(self, wakers: Mapping[str, Callable[[], None]]) -> None:
        """`wakers[name]()` wakes, in this process, what `name` in WAKEABLE names."""
        self._wakers = wakers
        if not self.workers:
            self.spawn()
        for worker in self.workers:
            self._go(worker)
        asyncio.get_running_loop().add_reader(self.listener, self._accept)
        self._watch = asyncio.create_task(self._keep_running(), name="crm-serving-workers")
        log.info("started %d serving worker(s): %s", self.count, [w.process.pid for w in self.workers])

    def _spawn(self) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with theirs:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "crm_gateway.cli", "up"),
                    *("--serving", f"{os.getpid()},{theirs.fileno()}"),
                ],
                pass_fds=(theirs.fileno(),),
                # Its own process group: a terminal's Ctrl+C reaches the main process, which stops it once.
                start_new_session=True,
            )
        ours.setblocking(False)
        return _Worker(process, ours)

    def _go(self, worker: _Worker) -> None:
        """Lets a spawned worker build its apps and serve, and listens to it."""
        asyncio.get_running_loop().add_reader(worker.channel, functools.partial(self._heard, worker))
        with contextlib.suppress(OSError):  # gone already: `_keep_running` starts another
            worker.channel.send(GO)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, say: try again in a moment, not at once
                log.warning("accepting a connection failed: %s", exc)
                loop = asyncio.get_running_loop()
                loop.remove_reader(self.listener)
                loop.call_later(ACCEPT_RETRY_SECONDS, self._listen_again)
                return
            with connection:  # this process's copy: the worker holds its own once sent
                self._hand_over(connection)

    def _listen_again(self) -> None:
        if not self._stopping:
            asyncio.get_running_loop().add_reader(self.listener, self._accept)

    def _hand_over(self, connection: socket.socket) -> None:
        """To the worker with the fewest open connections; of those tied, the next in turn (clients
        that close each connection before the next would otherwise all go to the first)."""
        count = len(self.workers)
        order = sorted(range(count), key=lambda i: (self.workers[i].open, (i - self._turn) % count))
        for i in order:
            worker = self.workers[i]
            if worker.channel.fileno() == -1:  # gone, not yet replaced
                continue
            try:
                socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
            except OSError:  # its pair is full, or it has gone: the next one
                continue
            worker.open += 1
            self._turn = (i + 1) % count
            return
        log.warning("no serving worker could take a connection; it is closed")

    def _heard(self, worker: _Worker) -> bool:
        """What a worker sent: wake-ups, and the connections it closed. False when there was
        nothing more to read."""
        try:
            data = worker.channel.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:  # it has gone; `_keep_running` starts another
            asyncio.get_running_loop().remove_reader(worker.channel)
            return False
        worker.open = max(0, worker.open - data.count(CLOSED))
        for index in set(data):
            if index < len(WAKEABLE) and (wake := self._wakers.get(WAKEABLE[index])) is not None:
                wake()
        return True

    async def _keep_running(self) -> None:
        loop = asyncio.get_running_loop()
        started = [loop.time()] * len(self.workers)
        # Workers in a row that died young (a broken install, a full disk): wait longer each time
        # rather than start one every second.
        young_deaths = 0
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            for i, worker in enumerate(self.workers):
                if worker.process.poll() is None or self._stopping:
                    continue
                young_deaths = young_deaths + 1 if loop.time() - started[i] < YOUNG_SECONDS else 0
                wait = backoff(young_deaths, cap=60) if young_deaths > 1 else 0.0
                log.warning(
                    "serving worker %d exited with %s; starting another in %.0f s",
                    *(worker.process.pid, worker.process.returncode, wait),
                )
                self._close(worker)
                _forget_metrics(worker.process.pid)
                await asyncio.sleep(wait)
                self.workers[i] = self._spawn()
                self._go(self.workers[i])
                started[i] = loop.time()

    def _close(self, worker: _Worker) -> None:
        # Wake-ups it wrote before it stopped are acted on: their rows are relayed.
        while self._heard(worker):
            pass
        asyncio.get_running_loop().remove_reader(worker.channel)
        worker.channel.close()

    async def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Closes the port, then SIGTERM to each worker (they finish the requests in flight) and
        waits; killed past `timeout`."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.listener)
        self.listener.close()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        deadline = loop.time() + timeout
        for worker in self.workers:
            try:
                await asyncio.to_thread(worker.process.wait, max(0.0, deadline - loop.time()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "serving worker %d did not stop within %.0f s; killed", worker.process.pid, timeout
                )
                worker.process.kill()
                await asyncio.to_thread(worker.process.wait)
        for worker in self.workers:
            if worker.channel.fileno() != -1:
                self._close(worker)
            _forget_metrics(worker.process.pid)


def _forget_metrics(pid: int) -> None:
    """A stopped worker's gauges leave the shared metrics (its counters stay: they counted)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def listening(host: str, port: int) -> socket.socket:
    """The main process's listening socket (non-blocking: it accepts on readiness)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class MainProcessLink:
    """A serving worker's end of its socket pair: connections come in (`HandedServer`), and it tells
    the main process what to wake (whose outbox grew, a queued webhook delivery) and which
    connections closed."""

    def __init__(self, main_process: int, fd: int) -> None:
        self.main_process = main_process
        self.channel = socket.socket(fileno=fd)

    def _send(self, byte: bytes) -> None:
        # A full pair already holds wake-ups for the main process to read; a closed one means it has
        # gone, which the reader of the pair acts on. Either way the row waits in the outbox.
        with contextlib.suppress(OSError):
            self.channel.send(byte)

    def wait_for_start(self) -> bool:
        """Blocks until the main process has started (False: it has gone instead)."""
        self.channel.setblocking(True)
        try:
            started = self.channel.recv(1) == GO
        except OSError:
            started = False
        self.channel.setblocking(False)
        return started

    def waker(self, name: str) -> Callable[[], None]:
        return functools.partial(self._send, bytes([WAKEABLE.index(name)]))

    def closed(self) -> None:
        self._send(bytes([CLOSED]))


class HandedServer(uvicorn.Server):
    """uvicorn serving the connections the main process hands over on `link`, on no port of its own.
    When the main process has gone (its end closed), it stops as on SIGTERM: the requests in flight
    finish, then the lifespan closes."""

    def __init__(self, config: uvicorn.Config, link: MainProcessLink) -> None:
        super().__init__(config)
        self.link = link
        self._connecting: set[asyncio.Task[None]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.link.channel.setblocking(False)
        await super().startup(sockets=[])
        protocol_class: Any = self.config.http_protocol_class
        closed = self.link.closed

        class Counted(protocol_class):  # type: ignore[misc]
            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                closed()

        self._protocol = functools.partial(
            Counted, config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        asyncio.get_running_loop().add_reader(self.link.channel, self._take)

    def _take(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.link.channel, 1, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:
                loop.remove_reader(self.link.channel)
                log.warning("the main process (%d) has gone; stopping", self.link.main_process)
                signal.raise_signal(signal.SIGTERM)
                return
            for fd in fds:
                task = loop.create_task(self._connect(socket.socket(fileno=fd)))
                self._connecting.add(task)
                task.add_done_callback(self._connecting.discard)

    async def _connect(self, sock: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, sock)
        except OSError as exc:  # the client went away meanwhile
            log.info("a handed-over connection could not be served: %s", exc)
            sock.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.link.channel)
        await super().shutdown(sockets=sockets)
