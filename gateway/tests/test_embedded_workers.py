"""`crm up --workers N` in process: what a serving worker wakes in the main process, and what the
main process wakes for each byte (crm_gateway.workers). The processes themselves: tests/e2e."""

import asyncio
import os
import socket

from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings
from crm_gateway.workers import WAKEABLE, RelayWakeups, ServingWorkers

PASSWORD = "Workers-pass-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(tmp_path) -> GatewaySettings:
    return GatewaySettings(data_dir=tmp_path, admin_password=PASSWORD)


async def test_a_serving_worker_names_the_outbox_that_grew_and_a_queued_delivery(tmp_path):
    read, write = os.pipe()
    try:
        app = create_embedded_app(settings(tmp_path), wakeups=RelayWakeups(os.getpid(), write))
        services = app.state.services
        services["customer"].state.wake_relay()
        services["webhook"].state.wake_deliveries()
        app.state.wake_relay()
        assert [WAKEABLE[byte] for byte in os.read(read, 16)] == ["customer", "webhook-deliveries", "gateway"]
    finally:
        os.close(read)
        os.close(write)


async def test_the_main_process_wakes_the_relay_or_the_delivery_loop_each_byte_names(tmp_path):
    """No serving worker is started here (0): the bytes are written as one would write them."""
    workers = ServingWorkers(0, "127.0.0.1", free_port())
    app = create_embedded_app(settings(tmp_path), only=("customer", "webhook"), workers=workers)
    woken: list[str] = []
    app.state.services["webhook"].state.webhook_worker.wake = lambda: woken.append("deliveries")
    async with running(app):
        app.state.services["customer"].state.runtime.db.outbox_listeners.append(
            lambda: woken.append("customer")
        )
        for name in ("webhook-deliveries", "customer", "pipeline"):  # pipeline: not in this process
            os.write(workers._wake_write, bytes([WAKEABLE.index(name)]))
        for _ in range(100):
            if len(woken) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted(woken) == ["customer", "deliveries"]
