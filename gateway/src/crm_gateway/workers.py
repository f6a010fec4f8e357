"""`crm up --workers N`: the embedded default on more than one core.

The process `crm up` starts is the first worker and does what a lone `crm up` does: it migrates,
serves, relays every outbox, consumes the events and runs the periodic jobs. Once started, it runs
N-1 serving-only workers (`ServingWorkers`) on the same listening socket, where the kernel hands
each connection to one of the processes. A serving-only worker (`settings.background_work` off)
serves requests and writes its outboxes; after each commit that wrote one it tells the first worker
which service's outbox grew (`RelayWakeups`, one byte on a pipe), so its events leave as soon as
they would from a lone process. SQLite serialises the writers of all processes (WAL).

The first worker starts a serving worker again when one dies; a serving worker whose first worker
has gone stops by itself. A graceful stop (SIGTERM, `crm down`, Ctrl+C) stops the serving workers
first, then the first worker sends what the outboxes hold, as a lone process does.
"""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping

from crm_gateway.settings import SERVICES

log = logging.getLogger("crm.workers")

# The apps that write an outbox, numbered for the one-byte wake-up.
OUTBOXES = ("gateway", *SERVICES)
CHECK_SECONDS = 1.0
STOP_SECONDS = 20.0


class ServingWorkers:
    """The first worker's side: starts, watches and stops the serving-only workers."""

    def __init__(self, count: int, listening_fd: int) -> None:
        self.count = count
        self.listening_fd = listening_fd
        self.processes: list[subprocess.Popen[bytes]] = []
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        self._relays: Mapping[str, Callable[[], None]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, relays: Mapping[str, Callable[[], None]]) -> None:
        """`relays[name]()` wakes the relay of that app's outbox in this process."""
        self._relays = relays
        asyncio.get_running_loop().add_reader(self._wake_read, self._woken)
        self.processes = [self._spawn() for _ in range(self.count)]
        self._watch = asyncio.create_task(self._keep_running(), name="crm-serving-workers")
        log.info("started %d serving worker(s): %s", self.count, [p.pid for p in self.processes])

    def _spawn(self) -> "subprocess.Popen[bytes]":
        fds = (self.listening_fd, self._wake_write)
        return subprocess.Popen(
            [sys.executable, "-m", "crm_gateway.cli", "up", "--serving", f"{os.getpid()},{fds[0]},{fds[1]}"],
            pass_fds=fds,
            # Its own process group: a terminal's Ctrl+C reaches this process, which stops it once.
            start_new_session=True,
        )

    def _woken(self) -> None:
        try:
            data = os.read(self._wake_read, 4096)
        except BlockingIOError:
            return
        for index in set(data):
            if index < len(OUTBOXES) and (wake := self._relays.get(OUTBOXES[index])) is not None:
                wake()

    async def _keep_running(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            for i, process in enumerate(self.processes):
                if process.poll() is not None and not self._stopping:
                    log.warning(
                        "serving worker %d exited with %s; starting another", process.pid, process.returncode
                    )
                    self.processes[i] = self._spawn()

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


class RelayWakeups:
    """A serving-only worker's side: tells the first worker whose outbox grew, and stops this process
    when the first worker is gone."""

    def __init__(self, first_worker: int, wake_fd: int) -> None:
        self.first_worker = first_worker
        self.fd = wake_fd
        os.set_blocking(wake_fd, False)

    def waker(self, name: str) -> Callable[[], None]:
        byte = bytes([OUTBOXES.index(name)])

        def wake() -> None:
            # A full pipe already holds wake-ups for the first worker to read; a closed one means it
            # has gone, which `watch_first_worker` acts on. Either way the row waits in the outbox.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(self.fd, byte)

        return wake

    async def watch_first_worker(self) -> None:
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            if os.getppid() != self.first_worker:
                break
        log.warning("the first worker (process %d) has gone; stopping", self.first_worker)
        # uvicorn's own handler: the requests in flight finish, then the lifespan closes.
        signal.raise_signal(signal.SIGTERM)
