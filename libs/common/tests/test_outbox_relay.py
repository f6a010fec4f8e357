"""Outbox writer and relay on SQLite and Postgres, with an in-process bus."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from crm_common.events.bus import UnroutableError
from crm_common.events.envelope import new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.events.outbox import add_events
from crm_common.events.relay import BusUnavailable, OutboxRelay
from crm_common.events.tables import outbox
from crm_common.pagination import sync_frontier
from sqlalchemy import select, text


def event(n: int = 0, key: str = "customer.created"):
    return new_event(key, service="test", subject=uuid.uuid4(), data={"n": n})


async def rows(db):
    async with db.transaction() as s:
        return (await s.execute(select(outbox).order_by(outbox.c.position))).all()


class RecordingBus:
    """Confirms everything, remembers what it published; can be told to fail or be 'down'."""

    def __init__(self, delay: float = 0.0):
        self.published: list[uuid.UUID] = []
        self.delay = delay
        self.ready = True
        self.fail_ids: set[uuid.UUID] = set()

    async def is_ready(self):
        return self.ready

    async def publish(self, events, *, timeout):
        await asyncio.sleep(self.delay)
        out = []
        for e in events:
            if e.id in self.fail_ids:
                out.append(RuntimeError("nacked"))
            else:
                self.published.append(e.id)
                out.append(None)
        return out


async def test_events_commit_with_the_transaction_and_vanish_with_a_rollback(db):
    kept, lost = event(1), event(2)
    async with db.transaction() as s:
        await add_events(s, kept)
    with pytest.raises(RuntimeError):
        async with db.transaction() as s:
            await add_events(s, lost)
            raise RuntimeError("the state change failed")
    found = await rows(db)
    assert [r.event_id for r in found] == [kept.id]
    assert found[0].state == "PENDING"
    assert found[0].payload["type"] == "crm.customer.created"


async def test_relay_publishes_every_committed_event_once_in_order(db):
    bus = RecordingBus()
    relay = OutboxRelay(db, bus, service="test", batch_size=7)
    events = [event(i) for i in range(20)]
    for e in events:
        async with db.transaction() as s:
            await add_events(s, e)
    while await relay.publish_batch():
        pass
    assert bus.published == [e.id for e in events]
    assert {r.state for r in await rows(db)} == {"PUBLISHED"}
    assert await relay.publish_batch() == 0


async def test_a_refused_event_stays_pending_with_backoff_and_others_go_out(db):
    bus = RecordingBus()
    relay = OutboxRelay(db, bus, service="test")
    bad, good = event(1), event(2)
    bus.fail_ids.add(bad.id)
    async with db.transaction() as s:
        await add_events(s, bad, good)
    await relay.publish_batch()
    by_id = {r.event_id: r for r in await rows(db)}
    assert by_id[good.id].state == "PUBLISHED"
    assert by_id[bad.id].state == "PENDING"
    assert by_id[bad.id].attempts == 1
    assert by_id[bad.id].next_attempt_at is not None
    assert "nacked" in by_id[bad.id].last_error
    # Not due yet: the next batch leaves it alone.
    assert await relay.publish_batch() == 0


async def test_while_the_broker_is_away_nothing_is_charged_an_attempt(db):
    bus = RecordingBus()
    bus.ready = False
    relay = OutboxRelay(db, bus, service="test")
    async with db.transaction() as s:
        await add_events(s, event())
    with pytest.raises(BusUnavailable):
        await relay.publish_batch()
    (row,) = await rows(db)
    assert (row.state, row.attempts) == ("PENDING", 0)
    bus.ready = True
    assert await relay.publish_batch() == 1


async def test_unroutable_events_are_kept_as_unrouted(db):
    bus = MemoryBus()
    relay = OutboxRelay(db, bus, service="test")
    async with db.transaction() as s:
        await add_events(s, event(key="nobody.listens"))
    await relay.publish_batch()
    (row,) = await rows(db)
    assert row.state == "UNROUTED"
    assert "unroutable" in row.last_error


async def test_relay_wakes_up_on_commit_instead_of_waiting_for_its_poll(db):
    bus = MemoryBus()
    seen = asyncio.Event()

    async def handler(e):
        seen.set()

    await bus.consume("watcher", ["customer.*"], handler)
    relay = OutboxRelay(db, bus, service="test", poll_interval=30)
    db.outbox_listeners.append(relay.wake)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.05)
        async with db.transaction() as s:
            await add_events(s, event())
        await asyncio.wait_for(seen.wait(), 2)
    finally:
        task.cancel()
        await bus.close()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_two_relays_never_publish_the_same_row(db):
    async with db.transaction() as s:
        await add_events(s, *[event(i) for i in range(300)])
    bus = RecordingBus(delay=0.01)
    relays = [OutboxRelay(db, bus, service="test", batch_size=20) for _ in range(2)]

    async def drain(relay):
        while await relay.publish_batch():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert len(bus.published) == 300
    assert len(set(bus.published)) == 300


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_a_relay_publishing_does_not_hold_back_the_sync_frontier(db):
    """The relay holds its transaction open while the broker confirms; it writes no records, so the
    cursor feeds' frontier (crm_common.pagination.sync_frontier) does not wait for it."""
    async with db.transaction() as s:
        await add_events(s, event())
    bus = RecordingBus(delay=3.0)
    publishing = asyncio.create_task(OutboxRelay(db, bus, service="test").publish_batch())
    try:
        async with asyncio.timeout(30):  # a ceiling for a loaded machine, not a measure
            while True:
                await asyncio.sleep(0.05)
                async with db.reads() as s:
                    held = (
                        (
                            await s.execute(
                                text(
                                    "SELECT application_name FROM pg_stat_activity WHERE state = 'idle in transaction' "
                                    "AND datname = current_database() AND application_name LIKE '%-aside'"
                                )
                            )
                        )
                        .scalars()
                        .all()
                    )
                if held:
                    break
        await asyncio.sleep(1.5)  # the relay's transaction is older than the frontier's margin now
        async with db.reads() as s:
            frontier = await sync_frontier(s)
        assert frontier is not None and frontier > datetime.now(UTC) - timedelta(seconds=2)
    finally:
        assert await publishing == 1


async def test_add_events_with_nothing_writes_nothing(db):
    async with db.transaction() as s:
        await add_events(s)
    assert await rows(db) == []


async def test_unroutable_error_is_what_the_memory_bus_raises():
    bus = MemoryBus()
    (result,) = await bus.publish([event(key="nobody.listens")], timeout=1)
    assert isinstance(result, UnroutableError)


async def test_purge_deletes_old_published_and_unrouted_rows_only(db, caplog):
    from datetime import timedelta

    from sqlalchemy import update

    bus = RecordingBus()
    relay = OutboxRelay(db, bus, service="test", retention=timedelta(hours=1))
    old, recent, pending = event(1), event(2), event(3)
    old_unrouted, recent_unrouted = event(4), event(5)
    async with db.transaction() as s:
        await add_events(s, old, recent)
    await relay.publish_batch()
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    async with db.transaction() as s:
        await add_events(s, pending, old_unrouted, recent_unrouted)
        await s.execute(update(outbox).where(outbox.c.event_id == old.id).values(published_at=long_ago))
        for e, at in ((old_unrouted, long_ago), (recent_unrouted, datetime.now(UTC))):
            await s.execute(
                update(outbox).where(outbox.c.event_id == e.id).values(state="UNROUTED", published_at=at)
            )
    bus.ready = False  # so `pending` stays pending
    with caplog.at_level("INFO", logger="crm.events.relay"):
        assert await relay.purge() == 2
    assert {r.event_id for r in await rows(db)} == {recent.id, pending.id, recent_unrouted.id}
    assert "removed 1 published and 1 unrouted rows" in caplog.text


async def test_drain_publishes_what_is_due_within_its_time(db):
    bus = RecordingBus()
    relay = OutboxRelay(db, bus, service="test", batch_size=2)
    events = [event(i) for i in range(5)]
    async with db.transaction() as s:
        await add_events(s, *events)
    assert await relay.drain(timeout=5) == 5
    assert {r.state for r in await rows(db)} == {"PUBLISHED"}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_sqlite_readers_do_not_block_a_writer(db):
    """Read-only transactions take no write lock, so a writer is not held up behind a slow read."""
    reading = asyncio.Event()

    async def slow_reader():
        async with db.transaction(read_only=True) as s:
            await s.execute(select(outbox))
            reading.set()
            await asyncio.sleep(0.5)

    reader = asyncio.create_task(slow_reader())
    await reading.wait()
    started = asyncio.get_running_loop().time()
    async with db.transaction() as s:
        await add_events(s, event())
    assert asyncio.get_running_loop().time() - started < 0.25
    await reader


async def test_the_relay_stops_when_cancelled_in_the_tick_it_is_woken(db):
    """A cancellation arriving with a wake-up must not be swallowed (asyncio.wait_for on 3.11 did),
    or a service would never finish shutting down."""
    for _ in range(20):
        relay = OutboxRelay(db, RecordingBus(), service="test", poll_interval=30)
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.01)
        relay.wake()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done, "the relay ignored its cancellation"
