"""What `customer.erased` does to a context's shared tables (crm_common.erasure), on SQLite and Postgres:
published outbox rows and dead letters about the person are purged, pending outbox rows keep going out
without the personal values, stored idempotent responses holding them are dropped, the read model
forgets the name for good; everything about other customers stays as it was."""

import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from crm_common import customer_refs, erasure
from crm_common.contracts.customer import CustomerErased, CustomerUpdated
from crm_common.events import dead_letters, tables
from crm_common.events.envelope import new_event
from crm_common.idempotency_store import keys
from crm_common.idempotency_store import metadata as idempotency_metadata

NAME = "Zelda Quarrington"
NOTE = "Allergic to Pistachio-Marzipan"


@pytest.fixture
async def erase_db(db):
    async with db.engine.begin() as conn:
        await conn.run_sync(customer_refs.metadata.create_all)
        await conn.run_sync(dead_letters.metadata.create_all)
        await conn.run_sync(idempotency_metadata.create_all)
    return db


def event(routing_key: str, subject: uuid.UUID, data: dict, sequence: int | None = None):
    return new_event(routing_key, service="activity", subject=subject, data=data, sequence=sequence)


def updated(cid, version, name):
    payload = CustomerUpdated(
        customer_id=cid, customer_number="CUST-1", full_name=name, status="CUSTOMER", changes={}
    )
    return new_event(
        payload.event_type, service="customer", subject=cid, data=payload.dump(), sequence=version
    )


def erased(cid, version):
    payload = CustomerErased(customer_id=cid, customer_number="CUST-1", erased_at=datetime.now(UTC))
    return new_event(
        payload.event_type, service="customer", subject=cid, data=payload.dump(), sequence=version
    )


async def outbox_row(s, e, state):
    await s.execute(
        sa.insert(tables.outbox).values(
            event_id=e.id,
            routing_key=e.routing_key,
            payload=e.model_dump(mode="json", exclude_none=True),
            created_at=datetime.now(UTC),
            state=state,
        )
    )


async def test_erasure_scrubs_event_copies_and_the_read_model(erase_db):
    db = erase_db
    cid, other = uuid.uuid4(), uuid.uuid4()
    sent = event("activity.created", uuid.uuid4(), {"customerId": str(cid), "subject": f"Call {NAME}"})
    waiting = event(
        "activity.completed", uuid.uuid4(), {"customerId": str(cid), "outcome": NOTE, "duration": 30}
    )
    unrelated = event("activity.created", uuid.uuid4(), {"customerId": str(other), "subject": "Call Bob"})
    parked = event("activity.updated", uuid.uuid4(), {"subject": f"About {NAME}"})
    async with db.transaction() as s:
        await customer_refs.on_customer_updated(s, updated(cid, 3, NAME))
        await customer_refs.on_customer_updated(s, updated(other, 1, "Bob Other"))
        await outbox_row(s, sent, "PUBLISHED")
        await outbox_row(s, waiting, "PENDING")
        await outbox_row(s, unrelated, "PUBLISHED")
        await s.execute(
            sa.insert(dead_letters.dead_letters).values(
                consumer="activity",
                event_id=parked.id,
                event_type=parked.type,
                payload=parked.model_dump(mode="json"),
                error="boom",
                attempts=5,
                first_failed_at=datetime.now(UTC),
                last_failed_at=datetime.now(UTC),
            )
        )
        for key, body in (("k1", json.dumps({"note": NOTE})), ("k2", json.dumps({"name": "Bob Other"}))):
            await s.execute(
                sa.insert(keys).values(
                    principal="u",
                    key=key,
                    request_hash="h",
                    status_code=201,
                    headers={},
                    body=body.encode(),
                    created_at=datetime.now(UTC),
                )
            )

    async def scrub(session, customer_id):
        assert customer_id == cid
        return {NOTE}

    handler = erasure.erased_handler(scrub)
    for _ in range(2):  # a redelivery finds nothing more to do and breaks nothing
        async with db.transaction() as s:
            await handler(s, erased(cid, 4))
    # An update older than the erasure, arriving late, does not bring the name back.
    async with db.transaction() as s:
        await customer_refs.on_customer_updated(s, updated(cid, 2, NAME))

    async with db.transaction() as s:
        outbox = {r.event_id: r for r in await s.execute(sa.select(tables.outbox))}
        letters = (await s.execute(sa.select(dead_letters.dead_letters))).all()
        stored = [r.key for r in await s.execute(sa.select(keys.c.key))]
        names = await customer_refs.names(s, [cid, other])
    assert set(outbox) == {waiting.id, unrelated.id}
    pending = outbox[waiting.id].payload
    assert pending["data"] == {"customerId": str(cid), "outcome": "[erased]", "duration": 30}
    assert outbox[waiting.id].state == "PENDING"
    assert outbox[unrelated.id].payload["data"]["subject"] == "Call Bob"
    assert letters == []
    assert stored == ["k2"]
    assert names == {cid: "[erased]", other: "Bob Other"}


def test_values_of_finds_the_strings_worth_scrubbing():
    assert erasure.values_of("Ann Lee", None, ["Jo", {"a": "Passport X1"}], {"n": 3}, "[erased]") == {
        "Ann Lee",
        "Passport X1",
    }
