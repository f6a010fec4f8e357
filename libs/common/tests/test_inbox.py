"""The inbox makes handlers idempotent: a redelivered event changes nothing."""

import asyncio
import uuid

import pytest
from crm_common.events.envelope import new_event
from crm_common.events.inbox import idempotent_dispatcher
from sqlalchemy import func, insert, select


def event():
    return new_event("customer.created", service="test", subject=uuid.uuid4(), data={})


async def count(db, effects) -> int:
    async with db.transaction() as s:
        return (await s.execute(select(func.count()).select_from(effects))).scalar_one()


async def test_a_duplicate_delivery_has_no_second_effect(db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": record})
    e = event()
    await dispatch(e)
    await dispatch(e)
    await dispatch(event())
    assert await count(db, effects) == 2


async def test_concurrent_duplicates_have_one_effect(db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))
        await asyncio.sleep(0.02)

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": record})
    e = event()
    await asyncio.gather(*(dispatch(e) for _ in range(5)), return_exceptions=True)
    assert await count(db, effects) == 1


async def test_a_failing_handler_leaves_no_trace_so_the_retry_counts(db, effects):
    attempts = []

    async def flaky(session, e):
        await session.execute(insert(effects).values(event_id=e.id))
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient")

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": flaky})
    e = event()
    with pytest.raises(RuntimeError):
        await dispatch(e)
    assert await count(db, effects) == 0
    await dispatch(e)
    assert await count(db, effects) == 1


async def test_consumers_are_independent(db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    e = event()
    await idempotent_dispatcher(db, "one", {"customer.created": record})(e)
    await idempotent_dispatcher(db, "two", {"customer.created": record})(e)
    assert await count(db, effects) == 2


async def test_events_without_a_handler_are_ignored(db, effects):
    dispatch = idempotent_dispatcher(db, "tester", {})
    await dispatch(event())
    assert await count(db, effects) == 0
