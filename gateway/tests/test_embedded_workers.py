"""`crm up --workers N` in process: what a serving worker tells the main process, what the main
process wakes for each byte, and which worker it hands a connection to (crm_gateway.workers). The
processes themselves: tests/e2e."""

import asyncio
import socket

from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from crm_gateway.workers import CLOSED, WAKEABLE, MainProcessLink, ServingWorkers, _Worker

PASSWORD = "Workers-pass-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(tmp_path) -> GatewaySettings:
    return GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD)


async def test_a_serving_worker_names_the_outbox_that_grew_and_a_queued_delivery(tmp_path):
    main_end, worker_end = socket.socketpair()
    with main_end:
        link = MainProcessLink(0, worker_end.detach())
        app = create_embedded_app(settings(tmp_path), link=link)
        services = app.state.services
        services["customer"].state.wake_relay()
        services["webhook"].state.wake_deliveries()
        app.state.wake_relay()
        link.closed()
        said = main_end.recv(16)
        link.channel.close()
    assert [WAKEABLE[byte] if byte != CLOSED else "closed" for byte in said] == [
        "customer",
        "webhook-deliveries",
        "gateway",
        "closed",
    ]


def fake_workers(workers: ServingWorkers, count: int) -> list[socket.socket]:
    """`count` workers that are only socket pairs: returns each one's own end."""
    ends = []
    for _ in range(count):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        workers.workers.append(_Worker(None, ours))  # type: ignore[arg-type]
        ends.append(theirs)
    return ends


async def test_the_main_process_wakes_the_relay_or_the_delivery_loop_each_byte_names(tmp_path):
    """No serving worker is started here (0); a socket pair stands for one."""
    workers = ServingWorkers(0, "127.0.0.1", free_port())
    app = create_embedded_app(settings(tmp_path), only=("customer", "webhook"), workers=workers)
    woken: list[str] = []
    app.state.services["webhook"].state.webhook_worker.wake = lambda: woken.append("deliveries")
    async with running(app):
        app.state.services["customer"].state.runtime.db.outbox_listeners.append(
            lambda: woken.append("customer")
        )
        (end,) = fake_workers(workers, 1)
        worker = workers.workers[0]
        worker.open = 2
        for name in ("webhook-deliveries", "customer", "pipeline"):  # pipeline: not in this process
            end.send(bytes([WAKEABLE.index(name)]))
        end.send(bytes([CLOSED]))
        await asyncio.sleep(0.05)
        assert workers._heard(worker)
        assert sorted(woken) == ["customer", "deliveries"]
        assert worker.open == 1
        end.close()
        workers.workers.clear()  # not a process for `stop` to stop
        worker.channel.close()


def handed_to(ends: list[socket.socket]) -> list[int]:
    """Which of the fake workers received a connection since the last look (by index)."""
    got = []
    for i, end in enumerate(ends):
        end.setblocking(False)
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(end, 1, 1)
            except BlockingIOError:
                break
            if not data:  # the main process's end is closed
                break
            for fd in fds:
                socket.socket(fileno=fd).close()
                got.append(i)
    return got


async def test_a_connection_goes_to_the_worker_with_fewest_open_and_ties_take_turns():
    workers = ServingWorkers(0, "127.0.0.1", free_port())
    try:
        ends = fake_workers(workers, 3)
        client = socket.socket()
        with client:
            for _ in range(6):
                workers._hand_over(client)
            # Six connections kept open: two each.
            assert sorted(handed_to(ends)) == [0, 0, 1, 1, 2, 2]
            assert [w.open for w in workers.workers] == [2, 2, 2]
            workers.workers[1].open = 0  # worker 1's two closed
            workers._hand_over(client)
            workers._hand_over(client)
            assert handed_to(ends) == [1, 1]
            # Connections that each close before the next: still spread, not all on the first.
            for w in workers.workers:
                w.open = 0
            for _ in range(3):
                workers._hand_over(client)
                for w in workers.workers:
                    w.open = 0
            assert sorted(handed_to(ends)) == [0, 1, 2]
            # A worker that has gone (its end closed) is passed over.
            workers.workers[0].channel.close()
            workers._hand_over(client)
            assert handed_to(ends) in ([1], [2])
    finally:
        workers.listener.close()
