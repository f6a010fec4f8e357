"""activity-svc records one system note per `customer.created`, whatever the bus does."""

import uuid

import pytest
from activity_svc.app import create_app
from activity_svc.settings import Settings
from crm_common.contracts.customer import CustomerCreated
from crm_common.events.envelope import new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing.plugin import running


@pytest.fixture
async def bus():
    bus = MemoryBus()
    yield bus
    await bus.close()


@pytest.fixture
async def client(database, signing_key, tmp_path, bus):
    url, schema = database
    settings = Settings(database_url=url, db_schema=schema, jwt_public_key=signing_key[1], data_dir=tmp_path)
    async with running(create_app(settings, bus=bus)) as client:
        yield client


def customer_created(customer_id=None, creator=None, **overrides):
    payload = CustomerCreated(
        customer_id=customer_id or uuid.uuid4(),
        customer_number="CUST-2026-000007",
        type=overrides.pop("type", "COMPANY"),
        full_name=overrides.pop("full_name", "Acme Ltd"),
        email="hq@acme.example",
        status="LEAD",
        created_by=creator,
    )
    return new_event("customer.created", service="customer", subject=payload.customer_id, data=payload.dump())


async def notes(client, headers, customer_id):
    r = await client.get("/api/v1/activities", params={"customerId": str(customer_id)}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_customer_created_records_one_system_note_in_the_seed_wording(client, bus, auth_headers):
    creator = uuid.uuid4()
    event = customer_created(creator=creator)
    assert await bus.publish([event], timeout=5) == [None]
    page = await notes(client, auth_headers("read_only"), event.data["customerId"])
    assert page["total"] == 1
    (note,) = page["items"]
    assert note["type"] == "NOTE"
    assert note["subject"] == "Customer created"
    assert note["description"] == "New company customer created: Acme Ltd"
    assert note["status"] == "COMPLETED"
    assert note["system"] is True
    assert note["sourceEventId"] == str(event.id)
    assert note["ownerId"] == str(creator)
    assert note["customerId"] == event.data["customerId"]
    assert note["startDate"].startswith(event.time.strftime("%Y-%m-%dT%H:%M"))


async def test_a_redelivered_event_records_no_second_note(client, bus, auth_headers):
    event = customer_created()
    for _ in range(3):
        assert await bus.publish([event], timeout=5) == [None]
    assert (await notes(client, auth_headers(), event.data["customerId"]))["total"] == 1


async def test_notes_are_kept_per_customer_and_the_filter_applies(client, bus, auth_headers):
    a, b = customer_created(), customer_created(type="INDIVIDUAL", full_name="Bo Li")
    await bus.publish([a, b], timeout=5)
    page = await notes(client, auth_headers(), b.data["customerId"])
    assert [n["description"] for n in page["items"]] == ["New individual customer created: Bo Li"]
    everything = (await client.get("/api/v1/activities", headers=auth_headers())).json()
    assert everything["total"] == 2
    only_calls = (
        await client.get("/api/v1/activities", params={"type": "CALL"}, headers=auth_headers())
    ).json()
    assert only_calls["total"] == 0


async def test_a_malformed_event_changes_nothing(client, bus, auth_headers):
    broken = new_event("customer.created", service="customer", subject="x", data={"customerId": "not-a-uuid"})
    await bus.publish([broken], timeout=5)
    assert bus.dead_letters["activity"][0].id == broken.id
    assert (await client.get("/api/v1/activities", headers=auth_headers())).json()["total"] == 0


async def test_listing_needs_activity_access_and_valid_filters(client, auth_headers):
    assert (await client.get("/api/v1/activities")).status_code == 401
    assert (await client.get("/api/v1/activities", headers=auth_headers("nobody"))).status_code == 403
    bad = await client.get("/api/v1/activities", params={"type": "PARTY"}, headers=auth_headers())
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
