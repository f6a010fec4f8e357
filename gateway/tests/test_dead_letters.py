"""Nothing lost in the embedded default: a consumer that cannot apply an event keeps it (as a durable
dead letter in its own database, or by failing the publish so the relay retries), and an operator
replays it with `crm events dlq replay`. Customers are created through the gateway; activity-svc
writes the "Customer created" notes."""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa
from activity_svc.service import notes as notes_service
from crm_common.events import dead_letters
from crm_common.events.dead_letters import PermanentEventError
from crm_common.events.tables import outbox
from crm_common.testing.plugin import eventually, running
from crm_gateway import dlq
from crm_gateway.embedded import create_embedded_app
from crm_gateway.settings import GatewaySettings

from .conftest import ADMIN, PASSWORD, login

CUSTOMERS = 30


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The embedded data folder; the `crm` command (and dlq's functions) find it through CRM_DATA_DIR."""
    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CRM_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
async def crm(data_dir):
    settings = GatewaySettings(data_dir=data_dir, admin_password=PASSWORD, admin_email=ADMIN)
    app = create_embedded_app(settings, only=("customer", "activity"))
    async with running(app) as client:
        client.headers.update(await login(client))
        client.app = app
        yield client


def crm_command(data_dir, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "crm_gateway.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def dlq_command(capsys, *args: str) -> int:
    """`crm events dlq ARGS` in this process (the subprocess form costs seconds of imports)."""
    parser = argparse.ArgumentParser(prog="crm events")
    dlq.add_commands(parser)
    capsys.readouterr()
    return await dlq.run(parser.parse_args(["dlq", *args]))


def runtime(client, service):
    return client.app.state.services[service].state.runtime


async def create_customers(client, n=CUSTOMERS) -> list[str]:
    ids = []
    for i in range(n):
        r = await client.post(
            "/api/v1/customers",
            json={
                "firstName": "Ada",
                "lastName": f"Lovelace {i}",
                "email": f"ada{i}-{uuid.uuid4().hex[:6]}@x.org",
            },
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


async def created_notes(client) -> dict[str, int]:
    """customer id -> how many "Customer created" notes it has."""
    r = await client.get("/api/v1/activities", params={"pageSize": 100})
    assert r.status_code == 200, r.text
    counts: dict[str, int] = {}
    for note in r.json()["items"]:
        if note["subject"] == "Customer created":
            counts[note["customerId"]] = counts.get(note["customerId"], 0) + 1
    return counts


async def outbox_states(client, service="customer") -> dict[str, int]:
    async with runtime(client, service).db.transaction(read_only=True) as s:
        rows = await s.execute(sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state))
        return dict(rows.all())


class ReadOnly:
    """Makes a SQLite database refuse every write, as an unwritable file does ("attempt to write a
    readonly database"): `PRAGMA query_only` on each connection the pool hands out."""

    def __init__(self, engine):
        self.on = False
        sa.event.listen(engine.sync_engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection, _record, _proxy):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA query_only={int(self.on)}")
        cursor.close()


async def test_an_unwritable_consumer_database_loses_no_event(crm, data_dir):
    activity = runtime(crm, "activity")
    readonly = ReadOnly(activity.db.engine)
    readonly.on = True
    await activity.db.engine.dispose()  # every connection from now on goes through the hook
    ids = await create_customers(crm)

    # Neither the note nor a dead letter can be written: the publishes fail, the rows stay PENDING.
    await asyncio.sleep(4)
    states = await outbox_states(crm)
    assert states.get("PUBLISHED", 0) == 0, states
    assert await created_notes(crm) == {}

    readonly.on = False
    await activity.db.engine.dispose()

    async def all_noted():
        notes = await created_notes(crm)
        return len(notes) == CUSTOMERS and notes

    # Rows that failed several times wait out their backoff (up to a minute) before the next try.
    notes = await eventually(all_noted, timeout=150)
    assert notes == dict.fromkeys(ids, 1)
    await eventually(lambda: _published(crm), timeout=90)
    # Nothing is left to an operator. A delivery whose retries ran out just as the file became
    # writable again may have recorded a dead letter that a redelivery then applied: it is marked
    # applied, and a replay only removes it.
    stale = await dlq.list_letters()
    assert all(x.applied for x in stale)
    assert {o.result for o in await dlq.replay()} <= {"already applied"}
    assert await dlq.list_letters() == []
    assert await created_notes(crm) == dict.fromkeys(ids, 1)


async def _published(client):
    return (await outbox_states(client)).get("PUBLISHED") == CUSTOMERS


async def test_a_failing_handler_dead_letters_durably_and_a_replay_applies_each_once(
    crm, data_dir, monkeypatch
):
    runtime(crm, "activity").bus.retry_delay = 0.01
    real = notes_service.record_system_note

    async def broken(*args, **kwargs):
        raise RuntimeError("notes are broken today")

    monkeypatch.setattr(notes_service, "record_system_note", broken)
    ids = await create_customers(crm)
    # Each event was given up on and recorded in activity.db, so its outbox row is done.
    await eventually(lambda: _published(crm), timeout=60)
    assert await created_notes(crm) == {}

    listed = crm_command(data_dir, "events", "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)["deadLetters"]
    assert len(letters) == CUSTOMERS
    assert {x["consumer"] for x in letters} == {"activity"}
    assert {x["payload"]["data"]["customerId"] for x in letters} == set(ids)
    assert all(
        x["attempts"] == 5 and x["error"].startswith("RuntimeError: notes are broken") for x in letters
    )

    # Fixed (a new release, say): the operator replays them.
    monkeypatch.setattr(notes_service, "record_system_note", real)
    replayed = crm_command(data_dir, "events", "dlq", "replay", "--all")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"{CUSTOMERS} replayed, 0 still failing." in replayed.stdout
    assert await created_notes(crm) == dict.fromkeys(ids, 1)
    assert await dlq.replay() == []
    assert await created_notes(crm) == dict.fromkeys(ids, 1)


async def test_a_permanent_error_is_dead_lettered_at_once_and_replaying_twice_adds_nothing(
    crm, data_dir, monkeypatch, capsys
):
    real = notes_service.record_system_note
    calls = []

    async def refuses(*args, **kwargs):
        calls.append(1)
        raise PermanentEventError("this note can never be written")

    monkeypatch.setattr(notes_service, "record_system_note", refuses)
    (customer_id,) = await create_customers(crm, 1)
    await eventually(lambda: dlq.list_letters(), timeout=10)
    (letter,) = await dlq.list_letters()
    assert calls == [1] and letter.attempts == 1
    assert letter.summary == "PermanentEventError: this note can never be written"
    assert letter.id.startswith("activity/")
    assert await dlq_command(capsys, "show", letter.id) == 0
    assert json.loads(capsys.readouterr().out)["payload"]["data"]["customerId"] == customer_id
    row = (await dead_letters.stored(runtime(crm, "activity").db))[0]

    # Replayed while still broken: kept, one more attempt.
    (outcome,) = await dlq.replay(ident=letter.id)
    assert not outcome.ok
    assert (await dlq.list_letters())[0].attempts == 2

    monkeypatch.setattr(notes_service, "record_system_note", real)
    (outcome,) = await dlq.replay(ident=letter.event_id)
    assert (outcome.id, outcome.result) == (letter.id, "applied")
    assert await dlq.list_letters() == []
    assert await created_notes(crm) == {customer_id: 1}

    # The same dead letter once more (a stale copy, say): the inbox knows it, nothing is added.
    async with runtime(crm, "activity").db.transaction() as s:
        await s.execute(sa.insert(dead_letters.dead_letters).values(**row._mapping))
    (outcome,) = await dlq.replay(ident=letter.id)
    assert outcome.result == "already applied"
    assert await created_notes(crm) == {customer_id: 1}
    assert await dlq.list_letters() == []
    assert await dlq_command(capsys, "replay", "--id", letter.id) == 1
    assert f"No dead letter {letter.id}." in capsys.readouterr().out


async def test_purge_removes_dead_letters_without_applying_them(crm, data_dir, monkeypatch, capsys):
    async def refuses(*args, **kwargs):
        raise PermanentEventError("no")

    monkeypatch.setattr(notes_service, "record_system_note", refuses)
    await create_customers(crm, 2)
    letters = await eventually(lambda: _two(dlq.list_letters()), timeout=10)
    assert await dlq.purge(ident=letters[0].id) == 1
    assert [x.id for x in await dlq.list_letters()] == [letters[1].id]
    assert await dlq_command(capsys, "purge", "--service", "activity", "--all") == 0
    assert "1 dead letter(s) removed." in capsys.readouterr().out
    assert await dlq.list_letters() == []
    assert await created_notes(crm) == {}


async def _two(letters_coro):
    letters = await letters_coro
    return letters if len(letters) == 2 else None


@pytest.mark.integration
async def test_distributed_dead_letters_on_postgres_and_in_the_broker_dlq_are_replayed(
    monkeypatch, postgres_url, pg_schema, amqp_url, events_namespace
):
    """Distributed mode: the table in the service's Postgres schema, and RabbitMQ's dead-letter queue
    (what a consumer could not even record) drained by the same `replay`."""
    import aio_pika
    from activity_svc.models import Activity
    from crm_common.contracts.customer import CustomerCreated
    from crm_common.db import Database
    from crm_common.events.catalogue import SUBSCRIPTIONS
    from crm_common.events.envelope import event_from
    from crm_common.events.rabbitmq_bus import RabbitBus
    from crm_common.migrations import migrate
    from crm_gateway.cli import _migrations_dir

    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CRM_DATABASE_URL", postgres_url)
    monkeypatch.setenv("CRM_ACTIVITY_DB_SCHEMA", pg_schema)
    monkeypatch.setenv("CRM_AMQP_URL", amqp_url)
    monkeypatch.setenv("CRM_EVENTS_NAMESPACE", events_namespace)

    def created(name):
        payload = CustomerCreated(
            customer_id=uuid.uuid4(),
            customer_number="CUST-2026-000001",
            type="COMPANY",
            full_name=name,
            email="x@example.com",
            status="LEAD",
        )
        return event_from(payload, service="customer", subject=payload.customer_id, sequence=1)

    db = Database(postgres_url, schema=pg_schema)
    bus = RabbitBus(amqp_url, namespace=events_namespace)
    try:
        await migrate(db, _migrations_dir("activity_svc"))
        in_table, in_broker = created("Table Ltd"), created("Broker Ltd")
        await dead_letters.record(db, "activity", in_table, RuntimeError("was broken"), 6)
        await bus.start()
        await bus.declare("activity", SUBSCRIPTIONS["activity"])
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            await channel.default_exchange.publish(
                aio_pika.Message(in_broker.to_json(), message_id=str(in_broker.id), type=in_broker.type),
                routing_key=bus.dead_letter_queue_name("activity"),
            )
            # ... and a message that is not an event at all.
            await channel.default_exchange.publish(
                aio_pika.Message(b"\x00garbage"), routing_key=bus.dead_letter_queue_name("activity")
            )

        assert [x.event_id for x in await dlq.list_letters("activity")] == [str(in_table.id)]
        assert await eventually(lambda: dlq.broker_counts("activity"), timeout=5) == {"activity": 2}

        outcomes = await dlq.replay("activity")
        assert [o.result for o in outcomes][:2] == ["applied", "applied"]
        # The unreadable one leaves the broker queue for the table, with its reason: from now on it
        # is listed like any dead letter (and can only be purged).
        assert outcomes[2].result.startswith("failed: not a CloudEvents 1.0 JSON event")
        assert outcomes[2].result.endswith("now in activity's dead letters")
        (unreadable,) = await dlq.list_letters("activity")
        assert unreadable.event_type == dead_letters.UNREADABLE_TYPE
        assert unreadable.payload["head"] == "\ufffdgarbage"
        assert await dlq.broker_counts("activity") == {"activity": 0}
        (again,) = await dlq.replay("activity")
        assert again.result == "failed: not an event, nothing to replay (discard it)"
        assert await dlq.purge("activity", unreadable.id) == 1
        assert await dlq.list_letters("activity") == []
        async with db.transaction(read_only=True) as s:
            names = (
                await s.execute(sa.select(Activity.description).order_by(Activity.description))
            ).scalars()
            assert list(names) == [
                "New company customer created: Broker Ltd",
                "New company customer created: Table Ltd",
            ]
        assert await dlq.replay("activity") == []
    finally:
        await bus.close()
        await db.dispose()
        async with await aio_pika.connect(amqp_url) as connection:
            for queue in (bus.queue_name("activity"), bus.dead_letter_queue_name("activity")):
                channel = await connection.channel()
                await channel.queue_delete(queue)
            channel = await connection.channel()
            for exchange in (bus.exchange_name, bus.dlx_name):
                await channel.exchange_delete(exchange)
