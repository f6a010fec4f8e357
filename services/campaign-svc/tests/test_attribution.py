import uuid
from datetime import timedelta

import pytest

from .conftest import (
    NOW,
    active_campaign,
    customer_created,
    customer_merged,
    deliver,
    iso,
    opportunity_won,
    outbox_payloads,
    with_targets,
)


async def metrics(client, headers, campaign_id, **params):
    r = await client.get(f"/api/v1/campaigns/{campaign_id}/metrics", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def touch(client, headers, campaign_id, customer_id, kind, at, ext):
    r = await client.post(
        f"/api/v1/campaigns/{campaign_id}/interactions",
        json={
            "interactions": [
                {"customerId": str(customer_id), "kind": kind, "occurredAt": iso(at), "externalId": ext}
            ]
        },
        headers=headers,
    )
    assert r.status_code == 200, r.text


async def test_leads_and_metrics(client, headers):
    c = await active_campaign(
        client, headers, actualCost="500.00", expectedLeads=4, expectedRevenue="2000.00"
    )
    leads = [uuid.uuid4() for _ in range(2)]
    created = [customer_created(i, source_campaign_id=uuid.UUID(c["id"])) for i in leads]
    await deliver(client, *created, created[0])  # redelivery
    await deliver(client, customer_created(source_campaign_id=uuid.uuid4()))  # unknown campaign: ignored
    m = await metrics(client, headers, c["id"])
    assert m["leads"] == 2 and m["costPerLead"] == "250.00" and m["leadsVsExpected"] == 0.5
    assert m["attributedRevenue"] == [] and m["roi"] == -1.0
    # a lead's won deal is attributed (no target row needed)
    await deliver(client, opportunity_won(leads[0], amount="1500.00"))
    m = await metrics(client, headers, c["id"])
    assert m["attributedRevenue"] == [{"currency": "USD", "amount": "1500.00"}]
    assert m["roi"] == 2.0 and m["revenueVsExpected"] == 0.75 and m["attributedConversions"] == 1
    assert len(await outbox_payloads(client, "campaign.member_converted")) == 1


async def test_conversion_marks_member_and_counts_once(client, headers):
    c = await active_campaign(client, headers, actualCost="100.00")
    a, b = await with_targets(client, headers, c["id"], 2)
    await touch(client, headers, c["id"], a, "CLICKED", NOW, "1")
    await touch(client, headers, c["id"], b, "SENT", NOW, "2")
    opp = uuid.uuid4()
    won = opportunity_won(a, amount="300.00", opportunity_id=opp)
    await deliver(client, won, won)
    await deliver(client, opportunity_won(a, amount="200.00", currency="EUR"))
    camp = (await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)).json()
    assert camp["conversionCount"] == 1
    targets = (
        await client.get(
            f"/api/v1/campaigns/{c['id']}/targets", params={"status": "CONVERTED"}, headers=headers
        )
    ).json()
    assert [t["customerId"] for t in targets["items"]] == [str(a)]
    m = await metrics(client, headers, c["id"])
    assert m["attributedRevenue"] == [
        {"currency": "EUR", "amount": "200.00"},
        {"currency": "USD", "amount": "300.00"},
    ]
    assert m["roi"] == 2.0  # USD only: the campaign's currency
    assert m["converted"] == {"count": 1, "rate": 0.5}
    assert m["opened"]["count"] == 1 and m["sent"] == 2
    events = await outbox_payloads(client, "campaign.member_converted")
    assert len(events) == 1 and events[0]["data"]["opportunityId"] == str(opp)
    # a newer state of the same opportunity replaces the amount, never adds
    await deliver(client, opportunity_won(a, amount="350.00", opportunity_id=opp, sequence=4))
    await deliver(client, opportunity_won(a, amount="1.00", opportunity_id=opp, sequence=2))  # older: ignored
    m = await metrics(client, headers, c["id"])
    assert {"currency": "USD", "amount": "350.00"} in m["attributedRevenue"]


async def test_attribution_window(client, headers):
    old = await active_campaign(client, headers, start=NOW - timedelta(days=120))
    (a,) = await with_targets(client, headers, old["id"], 1)
    await deliver(client, opportunity_won(a))
    m = await metrics(client, headers, old["id"])
    assert m["attributedRevenue"] == [] and m["converted"]["count"] == 0
    # a win before the campaign started does not count either
    await deliver(client, opportunity_won(a, at=NOW - timedelta(days=200)))
    assert (await metrics(client, headers, old["id"]))["attributedRevenue"] == []


@pytest.mark.parametrize("settings_extra", [{"attribution_window_days": 200}])
async def test_window_is_a_setting(client, headers, settings_extra):
    old = await active_campaign(client, headers, start=NOW - timedelta(days=120))
    (a,) = await with_targets(client, headers, old["id"], 1)
    await deliver(client, opportunity_won(a))
    m = await metrics(client, headers, old["id"])
    assert m["attributionWindowDays"] == 200 and m["attributedConversions"] == 1


async def test_first_touch_and_last_touch(client, headers):
    first = await active_campaign(client, headers, name="First", start=NOW - timedelta(days=10))
    second = await active_campaign(client, headers, name="Second", start=NOW - timedelta(days=5))
    customer = uuid.uuid4()
    await deliver(client, customer_created(customer))
    for c in (first, second):
        r = await client.post(
            f"/api/v1/campaigns/{c['id']}/targets", json={"customerIds": [str(customer)]}, headers=headers
        )
        assert r.json()["added"] == [str(customer)]
    await touch(client, headers, first["id"], customer, "OPENED", NOW - timedelta(days=9), "f")
    await touch(client, headers, second["id"], customer, "CLICKED", NOW - timedelta(days=2), "s")
    await deliver(client, opportunity_won(customer, amount="900.00"))
    ft1 = await metrics(client, headers, first["id"])
    ft2 = await metrics(client, headers, second["id"])
    assert ft1["attributionModel"] == "FIRST_TOUCH"
    assert (
        ft1["attributedRevenue"] == [{"currency": "USD", "amount": "900.00"}]
        and ft2["attributedRevenue"] == []
    )
    lt1 = await metrics(client, headers, first["id"], attributionModel="LAST_TOUCH")
    lt2 = await metrics(client, headers, second["id"], attributionModel="LAST_TOUCH")
    assert lt1["attributedRevenue"] == [] and lt2["attributedRevenue"] == [
        {"currency": "USD", "amount": "900.00"}
    ]
    # both members are CONVERTED; only one campaign is credited
    assert ft1["converted"]["count"] == 1 and ft2["converted"]["count"] == 1
    r = await client.get(
        f"/api/v1/campaigns/{first['id']}/metrics", params={"attributionModel": "LINEAR"}, headers=headers
    )
    assert r.status_code == 422


@pytest.mark.parametrize("settings_extra", [{"attribution_model": "LAST_TOUCH"}])
async def test_last_touch_setting(client, headers, settings_extra):
    c = await active_campaign(client, headers)
    assert (await metrics(client, headers, c["id"]))["attributionModel"] == "LAST_TOUCH"


async def test_merged_lead_converts_for_primary(client, headers):
    c = await active_campaign(client, headers)
    primary, secondary = uuid.uuid4(), uuid.uuid4()
    await deliver(
        client,
        customer_created(primary, source_campaign_id=uuid.UUID(c["id"])),
        customer_created(secondary, source_campaign_id=uuid.UUID(c["id"])),
        customer_merged(primary, secondary),
    )
    m = await metrics(client, headers, c["id"])
    assert m["leads"] == 1
    await deliver(client, opportunity_won(secondary, amount="10.00"))
    m = await metrics(client, headers, c["id"])
    assert m["attributedRevenue"] == [{"currency": "USD", "amount": "10.00"}]
    r = await client.get(f"/api/v1/campaigns/{uuid.uuid4()}/metrics", headers=headers)
    assert r.status_code == 404
