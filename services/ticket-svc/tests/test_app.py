"""The app stops its background tasks even when one swallows a cancellation."""

import asyncio
from types import SimpleNamespace

from ticket_svc.app import stop_background_tasks


async def test_a_task_that_swallows_its_first_cancellation_is_stopped_anyway():
    wake = asyncio.Event()

    async def relay_like():
        while True:
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), 1.0)  # on 3.11 this can eat a cancel
            except TimeoutError:
                pass

    task = asyncio.create_task(relay_like())
    await asyncio.sleep(0.01)
    wake.set()
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_background_tasks(SimpleNamespace(tasks=[task])), 5)
    assert task.done()
