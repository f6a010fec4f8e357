import uuid
from datetime import UTC, datetime, timedelta

import pytest
from campaign_svc.app import create_app
from campaign_svc.events.handlers import handlers
from campaign_svc.settings import Settings
from crm_common.contracts.customer import CustomerMerged, CustomerOwner, CustomerUpdated
from crm_common.events.envelope import event_from, new_event
from crm_common.events.memory_bus import MemoryBus
from crm_common.testing import plugin as shared
from crm_common.testing.plugin import running


@pytest.fixture
async def bus():
    bus = MemoryBus()
    yield bus
    await bus.close()


def make_settings(database, signing_key, tmp_path, **extra) -> Settings:
    url, schema = database
    return Settings(
        database_url=url, db_schema=schema, jwt_public_key=signing_key[1], data_dir=tmp_path, **extra
    )


@pytest.fixture
def settings_extra() -> dict:
    return {}


@pytest.fixture
async def client(database, signing_key, tmp_path, bus, settings_extra):
    settings = make_settings(database, signing_key, tmp_path, **settings_extra)
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        client.app = app
        client.settings = settings
        client.is_postgres = not database[0].startswith("sqlite")
        yield client


# The marketer the `headers` fixture signs in as; the customers of `customer_created` are theirs by
# default, so they are inside the marketer's customer read scope (`team`: their own, in no team).
MARKETER = uuid.uuid4()


@pytest.fixture
def headers(auth_headers):
    return auth_headers("marketer", user_id=MARKETER)


count_rows = shared.count_rows
outbox_payloads = shared.outbox_payloads


async def deliver(client, *events) -> None:
    """Hand events to campaign-svc exactly as its bus consumer does (crm_common.testing.plugin)."""
    await shared.deliver(client, "campaign", handlers(client.settings), *events)


async def add_user(client, user_id=None) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    await deliver(client, shared.user_event(user_id, name="Ada", roles=["marketer"]))
    return user_id


def customer_created(
    customer_id=None,
    *,
    status="LEAD",
    source_campaign_id=None,
    name="Jo Doe",
    at=None,
    assigned_to=MARKETER,
    team=None,
):
    """customer.created for a person (a LEAD of the marketer's, unless told otherwise); `at` backdates it."""
    event = shared.customer_created_event(
        customer_id,
        name=name,
        type="INDIVIDUAL",
        status=status,
        source_campaign_id=source_campaign_id,
        owner=CustomerOwner(assigned_to_id=assigned_to, team_id=team),
    )
    if at is not None:
        event = event.model_copy(update={"time": at})
    return event


def customer_updated(customer_id, *, status, sequence=2, changes=None):
    payload = CustomerUpdated(
        customer_id=customer_id,
        customer_number="CUST-2026-000001",
        full_name="Jo Doe",
        status=status,
        changes=changes or {"status": status},
    )
    return event_from(payload, service="customer", subject=customer_id, sequence=sequence)


def customer_merged(primary, secondary):
    payload = CustomerMerged(
        primary_customer_id=primary,
        secondary_customer_id=secondary,
        primary_customer_number="CUST-1",
        secondary_customer_number="CUST-2",
        primary_full_name="Primary",
        secondary_full_name="Secondary",
    )
    return event_from(payload, service="customer", subject=primary, sequence=5)


def opportunity_won(
    customer_id, *, amount="1000.00", currency="USD", opportunity_id=None, at=None, sequence=3
):
    opportunity_id = opportunity_id or uuid.uuid4()
    data = {
        "opportunityId": str(opportunity_id),
        "customerId": str(customer_id),
        "title": "Deal",
        "status": "WON",
        "amount": amount,
        "currency": currency,
        "probability": 100,
        "stageId": str(uuid.uuid4()),
        "stageName": "Won",
        "ownerId": str(uuid.uuid4()),
        "closeDate": "2030-01-01",
    }
    event = new_event(
        "opportunity.won", service="pipeline", subject=opportunity_id, data=data, sequence=sequence
    )
    if at is not None:
        event = event.model_copy(update={"time": at})
    return event


def iso(dt: datetime) -> str:
    return dt.isoformat()


NOW = datetime.now(UTC)


async def create_campaign(client, headers, **body) -> dict:
    body.setdefault("name", "Spring launch")
    body.setdefault("type", "EMAIL")
    r = await client.post("/api/v1/campaigns", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def active_campaign(client, headers, *, start=None, **body) -> dict:
    start = start or NOW - timedelta(days=1)
    c = await create_campaign(client, headers, startDate=iso(start), **body)
    r = await client.post(f"/api/v1/campaigns/{c['id']}/activate", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def with_targets(client, headers, campaign_id, n=3) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    await deliver(client, *(customer_created(i) for i in ids))
    r = await client.post(
        f"/api/v1/campaigns/{campaign_id}/targets",
        json={"customerIds": [str(i) for i in ids]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["added"]) == n
    return ids
