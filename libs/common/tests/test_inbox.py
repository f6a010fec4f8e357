"""The inbox makes handlers idempotent: a redelivered event changes nothing."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from crm_common.events.envelope import new_event
from crm_common.events.inbox import (
    Upsert,
    UpsertHandler,
    idempotent_dispatcher,
    keep_retention,
    purge_processed,
)
from crm_common.events.tables import inbox
from crm_common.testing.plugin import eventually
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


async def _processed(db, consumer: str, age: timedelta) -> uuid.UUID:
    event_id = uuid.uuid4()
    async with db.transaction() as s:
        await s.execute(
            insert(inbox).values(
                consumer=consumer,
                event_id=event_id,
                event_type="crm.customer.created",
                processed_at=datetime.now(UTC) - age,
            )
        )
    return event_id


async def _kept(db) -> set[uuid.UUID]:
    async with db.transaction(read_only=True) as s:
        return set((await s.execute(select(inbox.c.event_id))).scalars())


async def test_the_retention_purges_inbox_rows_older_than_it_and_keeps_the_rest(db):
    old = await _processed(db, "tester", timedelta(days=15))
    young = await _processed(db, "tester", timedelta(days=13))
    others = await _processed(db, "other", timedelta(days=30))

    assert await purge_processed(db, timedelta(days=14), consumer="tester") == 1
    assert await _kept(db) == {young, others}
    # A purged event delivered again would be applied again: the retention must outlive redeliveries
    # (see crm_common.events.inbox); within it, the duplicate is still refused.
    assert await purge_processed(db, timedelta(days=14), consumer="tester") == 0
    assert old not in await _kept(db)


async def test_the_retention_task_purges_at_start_and_then_every_interval(db):
    first = await _processed(db, "tester", timedelta(days=20))
    task = asyncio.create_task(keep_retention(db, "tester", timedelta(days=14), every=0.05))
    try:
        assert await eventually(lambda: _gone(db, first))
        # Rows that grow old while the service runs go at the next round.
        second = await _processed(db, "tester", timedelta(days=20))
        fresh = await _processed(db, "tester", timedelta(seconds=1))
        assert await eventually(lambda: _gone(db, second))
        assert fresh in await _kept(db)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _gone(db, event_id) -> bool:
    return event_id not in await _kept(db)


async def test_a_batch_applies_each_event_once_in_one_transaction(db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": record})
    seen = event()
    await dispatch(seen)
    fresh = [event(), event()]
    ignored = new_event("ticket.created", service="test", subject=uuid.uuid4(), data={})
    outcomes = await dispatch.apply_batch([fresh[0], seen, ignored, fresh[1]])
    assert outcomes == ["applied", "duplicate", "ignored", "applied"]
    assert await count(db, effects) == 3
    # Each was recorded in the inbox, so delivering any of them again changes nothing.
    assert await dispatch.apply_batch(fresh) == ["duplicate", "duplicate"]
    assert await count(db, effects) == 3


async def test_a_failing_event_leaves_nothing_of_its_batch_and_each_then_goes_alone(db, effects):
    poison = event()

    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))
        if e.id == poison.id:
            raise RuntimeError("cannot handle")

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": record})
    others = [event(), event()]
    with pytest.raises(RuntimeError):
        await dispatch.apply_batch([others[0], poison, others[1]])
    assert await count(db, effects) == 0
    assert [await dispatch(e) for e in others] == ["applied", "applied"]
    with pytest.raises(RuntimeError):
        await dispatch(poison)
    assert await count(db, effects) == 2


async def test_an_event_a_batch_handler_wrote_is_read_afresh_by_the_next(db, effects):
    """In a batch, each handler sees what the ones before it wrote, as in transactions of their own."""
    seen = []

    async def record(session, e):
        seen.append((await session.execute(select(func.count()).select_from(effects))).scalar_one())
        await session.execute(insert(effects).values(event_id=e.id))

    dispatch = idempotent_dispatcher(db, "tester", {"customer.created": record})
    await dispatch.apply_batch([event(), event(), event()])
    assert seen == [0, 1, 2]


# --- one-row handlers (UpsertHandler): on Postgres the claim and the upsert are one statement ----------


one_row_metadata = sa.MetaData()
names = sa.Table(
    "names",
    one_row_metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
)


def _newer_only(stmt, columns):
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={c: stmt.excluded[c] for c in columns if c != "id"},
        where=names.c.version < stmt.excluded.version,
    )


def named(record_id, name, version):
    return new_event(
        "customer.updated", service="test", subject=record_id, data={"name": name}, sequence=version
    )


async def _name_row(e):
    if e.data["name"] is None:
        return None  # not one row's upsert: the `otherwise` handler's
    return Upsert(
        names, {"id": uuid.UUID(e.subject), "name": e.data["name"], "version": e.sequence}, _newer_only
    )


@pytest.fixture
async def names_db(db):
    async with db.engine.begin() as conn:
        await conn.run_sync(one_row_metadata.create_all)
    return db


async def _names(db):
    async with db.transaction(read_only=True) as s:
        return {row.id: (row.name, row.version) for row in await s.execute(select(names))}


async def _claimed(db, consumer):
    async with db.transaction(read_only=True) as s:
        return set((await s.execute(select(inbox.c.event_id).where(inbox.c.consumer == consumer))).scalars())


async def test_a_one_row_handler_applies_an_event_once_and_records_it(names_db):
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": UpsertHandler(_name_row)})
    rid = uuid.uuid4()
    first, second = named(rid, "Ada", 1), named(rid, "Grace", 2)
    assert await dispatch(first) == "applied"
    assert await dispatch(second) == "applied"
    assert await _names(names_db) == {rid: ("Grace", 2)}
    assert await _claimed(names_db, "namer") == {first.id, second.id}
    # A redelivery of either is a duplicate; another consumer's inbox is its own.
    assert await dispatch(first) == "duplicate"
    assert (
        await idempotent_dispatcher(names_db, "other", {"customer.updated": UpsertHandler(_name_row)})(first)
        == "applied"
    )
    assert await _names(names_db) == {rid: ("Grace", 2)}  # the row's own version rule still holds


async def test_a_one_row_handler_does_nothing_for_a_duplicate_even_when_the_row_is_gone(names_db):
    """The row is written only when the claim is: a redelivered event does not bring back a row that
    was deleted since (a forgotten customer stays forgotten)."""
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": UpsertHandler(_name_row)})
    rid = uuid.uuid4()
    e = named(rid, "Ada", 1)
    await dispatch(e)
    async with names_db.transaction() as s:
        await s.execute(sa.delete(names))
    assert await dispatch(e) == "duplicate"
    assert await _names(names_db) == {}


async def test_a_failing_one_row_upsert_leaves_no_claim_so_the_retry_counts(names_db):
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": UpsertHandler(_name_row)})
    rid = uuid.uuid4()
    broken = new_event("customer.updated", service="test", subject=rid, data={"name": "x"}, sequence=None)
    with pytest.raises(Exception, match=r"(?i)null"):  # version NOT NULL
        await dispatch(broken)
    assert await _claimed(names_db, "namer") == set()
    assert await _names(names_db) == {}


async def test_an_event_that_is_not_one_row_goes_to_the_otherwise_handler(names_db, effects):
    async def record(session, e):
        await session.execute(insert(effects).values(event_id=e.id))

    handler = UpsertHandler(_name_row, otherwise=record)
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": handler})
    rid = uuid.uuid4()
    e = named(rid, None, 1)
    assert await dispatch(e) == "applied"
    assert await dispatch(e) == "duplicate"
    assert await count(names_db, effects) == 1
    assert await _names(names_db) == {}


async def test_one_row_handlers_in_a_batch_apply_as_alone(names_db):
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": UpsertHandler(_name_row)})
    a, b = uuid.uuid4(), uuid.uuid4()
    seen = named(a, "Ada", 1)
    await dispatch(seen)
    outcomes = await dispatch.apply_batch([named(a, "Grace", 2), seen, named(b, "Hopper", 1)])
    assert outcomes == ["applied", "duplicate", "applied"]
    assert await _names(names_db) == {a: ("Grace", 2), b: ("Hopper", 1)}


async def test_a_batch_applies_one_rows_upserts_in_order_and_an_event_twice_once(names_db):
    """A batch's same-shape upserts go to the database together: a row written twice ends as the
    events in order leave it (the older version does not win for coming last), and the second copy
    of an event delivered twice in the batch is a duplicate."""
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": UpsertHandler(_name_row)})
    a, b = uuid.uuid4(), uuid.uuid4()
    newer, older, again = named(a, "Grace", 3), named(a, "Ada", 2), named(b, "Hopper", 1)
    outcomes = await dispatch.apply_batch([named(a, "Ada", 1), newer, older, again, again])
    assert outcomes == ["applied", "applied", "applied", "applied", "duplicate"]
    assert await _names(names_db) == {a: ("Grace", 3), b: ("Hopper", 1)}
    assert await dispatch.apply_batch([newer, again]) == ["duplicate", "duplicate"]


async def test_a_handler_in_a_batch_sees_the_upserts_before_it_and_not_those_after(names_db):
    seen = []

    async def look(session, e):
        seen.append({row.id: row.name for row in await session.execute(select(names.c.id, names.c.name))})

    handler = UpsertHandler(_name_row, otherwise=look)
    dispatch = idempotent_dispatcher(names_db, "namer", {"customer.updated": handler})
    a, b = uuid.uuid4(), uuid.uuid4()
    batch = [named(a, "Ada", 1), named(uuid.uuid4(), None, 1), named(b, "Hopper", 1)]
    assert await dispatch.apply_batch(batch) == ["applied"] * 3
    assert seen == [{a: "Ada"}]
    assert await _names(names_db) == {a: ("Ada", 1), b: ("Hopper", 1)}
