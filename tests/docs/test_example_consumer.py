"""docs/examples/consume_events.py, the consumer the AsyncAPI document points integrators to, receives
what the CRM publishes: run as a user would, against the local RabbitMQ."""

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path

import aio_pika
import pytest
from crm_common.events.envelope import new_event
from crm_common.events.rabbitmq_bus import RabbitBus

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parents[2] / "docs" / "examples" / "consume_events.py"


async def _line(process: asyncio.subprocess.Process) -> dict:
    line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    assert line, (await process.stderr.read()).decode()
    return json.loads(line)


async def test_the_example_consumer_receives_the_events_it_binds(amqp_url, events_namespace):
    queue = f"example-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "customer.*",
        "--url",
        amqp_url,
        "--namespace",
        events_namespace,
        "--queue",
        queue,
        "--max-messages",
        "2",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    bus = RabbitBus(amqp_url, namespace=events_namespace)
    try:
        assert (await _line(process))["exchange"] == f"{events_namespace}crm.events"
        await bus.start()
        created = new_event("customer.created", service="customer", subject=uuid.uuid4(), data={"n": 1})
        won = new_event("opportunity.won", service="pipeline", subject=uuid.uuid4(), data={"n": 2})
        merged = new_event("customer.merged", service="customer", subject=uuid.uuid4(), data={"n": 3})
        # opportunity.won is bound by nobody here: the CRM's confirmed publish says so.
        results = await bus.publish([created, won, merged], timeout=10)
        assert results[0] is None and results[1] is not None and results[2] is None

        received = [await _line(process), await _line(process)]
        assert [(r["id"], r["type"], r["data"]) for r in received] == [
            (str(created.id), "crm.customer.created", {"n": 1}),
            (str(merged.id), "crm.customer.merged", {"n": 3}),
        ]
        assert await asyncio.wait_for(process.wait(), timeout=30) == 0
    finally:
        if process.returncode is None:
            process.kill()
        await bus.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            for name in (queue, f"{queue}.dlq"):
                await channel.queue_delete(name)
            await channel.exchange_delete(f"{queue}.dlx")
