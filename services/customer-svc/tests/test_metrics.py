"""What /metrics tells an operator about a running service: the outbox backlog, the database pool,
event handling; and that it can be kept private."""

import re

import pytest
from crm_common.testing.plugin import running
from customer_svc.app import create_app

from .conftest import add_user

ADA = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"}


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_show_the_backlog_the_pool_and_event_handling(client, auth_headers):
    assert (
        await client.post("/api/v1/customers", json=ADA, headers=auth_headers("admin"))
    ).status_code == 201
    await add_user(client)  # a user.created event handled by customer-svc's consumer

    text = (await client.get("/metrics")).text
    pending = sample(text, "crm_outbox_pending", service="customer")
    assert pending is not None and pending >= 0
    assert sample(text, "crm_outbox_oldest_pending_age_seconds", service="customer") is not None
    assert sample(text, "crm_db_pool_connections_in_use", service="customer") is not None
    handled = sample(
        text,
        "crm_event_handler_seconds_count",
        consumer="customer",
        type="crm.user.created",
        outcome="applied",
    )
    assert handled is not None and handled >= 1
    assert sample(text, "crm_event_lag_seconds_count", consumer="customer") >= 1
    assert sample(text, "crm_admission_in_flight", service="customer", budget="write") is not None
    # Dead letters waiting in customer-svc's table (none here), read at scrape time.
    assert sample(text, "crm_event_dead_letters", consumer="customer") == 0


@pytest.fixture
async def private_metrics(settings_with, bus):
    async with running(create_app(settings_with(metrics_token="s3cret"), bus=bus)) as client:
        yield client


async def test_metrics_can_be_kept_private(private_metrics):
    assert (await private_metrics.get("/metrics")).status_code == 401
    wrong = await private_metrics.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = await private_metrics.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert right.status_code == 200 and "crm_outbox_pending" in right.text
    assert (await private_metrics.get("/healthz")).status_code == 200
