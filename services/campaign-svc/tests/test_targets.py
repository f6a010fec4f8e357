import uuid

from campaign_svc.models import CampaignTarget

from .conftest import (
    NOW,
    active_campaign,
    count_rows,
    create_campaign,
    customer_created,
    customer_merged,
    customer_updated,
    deliver,
    iso,
    outbox_payloads,
    with_targets,
)


async def test_add_targets_per_item_refusals(client, headers):
    c = await create_campaign(client, headers)
    ok, inactive, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    later_inactive = uuid.uuid4()
    await deliver(client, customer_created(ok), customer_created(inactive, status="INACTIVE"))
    await deliver(
        client, customer_created(later_inactive), customer_updated(later_inactive, status="INACTIVE")
    )
    body = {"customerIds": [str(ok), str(inactive), str(unknown), str(ok), str(later_inactive)]}
    r = await client.post(f"/api/v1/campaigns/{c['id']}/targets", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["added"] == [str(ok)] and out["targetCount"] == 1
    codes = {x["customerId"]: x["code"] for x in out["refused"]}
    assert codes == {
        str(inactive): "CUSTOMER_INACTIVE",
        str(unknown): "UNKNOWN_CUSTOMER",
        str(later_inactive): "CUSTOMER_INACTIVE",
    }
    # again: no duplicate
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets", json={"customerIds": [str(ok)]}, headers=headers
    )
    assert r.json()["added"] == [] and r.json()["alreadyTargets"] == [str(ok)]
    assert await count_rows(client, CampaignTarget) == 1
    events = await outbox_payloads(client, "campaign.target_added")
    assert len(events) == 1 and events[0]["data"]["customerId"] == str(ok)
    r = await client.get(f"/api/v1/campaigns/{c['id']}/targets", headers=headers)
    assert r.json()["total"] == 1 and r.json()["items"][0]["status"] == "TARGETED"
    assert r.json()["items"][0]["customerName"] == "Jo Doe"


async def test_out_of_order_update_does_not_regress(client, headers):
    c = await create_campaign(client, headers)
    cid = uuid.uuid4()
    # the update (sequence 2) arrives before the create (sequence 1)
    await deliver(client, customer_updated(cid, status="INACTIVE"), customer_created(cid, status="LEAD"))
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets", json={"customerIds": [str(cid)]}, headers=headers
    )
    assert r.json()["refused"][0]["code"] == "CUSTOMER_INACTIVE"


async def test_remove_and_limits(client, headers):
    c = await create_campaign(client, headers)
    ids = await with_targets(client, headers, c["id"], 2)
    r = await client.delete(f"/api/v1/campaigns/{c['id']}/targets/{ids[0]}", headers=headers)
    assert r.status_code == 204
    r = await client.delete(f"/api/v1/campaigns/{c['id']}/targets/{ids[0]}", headers=headers)
    assert r.status_code == 404 and r.json()["code"] == "TARGET_NOT_FOUND"
    r = await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)
    assert r.json()["targetCount"] == 1
    too_many = {"customerIds": [str(uuid.uuid4()) for _ in range(1001)]}
    r = await client.post(f"/api/v1/campaigns/{c['id']}/targets", json=too_many, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "TARGET_BATCH_TOO_LARGE"
    r = await client.post(f"/api/v1/campaigns/{c['id']}/targets", json={"customerIds": []}, headers=headers)
    assert r.status_code == 422
    await client.post(f"/api/v1/campaigns/{c['id']}/cancel", headers=headers)
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/targets", json={"customerIds": [str(ids[0])]}, headers=headers
    )
    assert r.status_code == 409 and r.json()["code"] == "CAMPAIGN_CLOSED"
    r = await client.get(f"/api/v1/campaigns/{uuid.uuid4()}/targets", headers=headers)
    assert r.status_code == 404


async def test_merge_repoints_and_keeps_furthest_status(client, headers):
    c = await active_campaign(client, headers)
    other = await create_campaign(client, headers, name="Other")
    primary, secondary = await with_targets(client, headers, c["id"], 2)
    r = await client.post(
        f"/api/v1/campaigns/{other['id']}/targets", json={"customerIds": [str(secondary)]}, headers=headers
    )
    assert r.json()["added"] == [str(secondary)]
    # secondary clicked, primary only sent
    batch = [
        {"customerId": str(secondary), "kind": "CLICKED", "occurredAt": iso(NOW), "externalId": "s1"},
        {"customerId": str(primary), "kind": "SENT", "occurredAt": iso(NOW), "externalId": "p1"},
    ]
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/interactions", json={"interactions": batch}, headers=headers
    )
    assert r.status_code == 200, r.text
    merged = customer_merged(primary, secondary)
    await deliver(client, merged, merged)  # duplicate delivery changes nothing
    r = await client.get(f"/api/v1/campaigns/{c['id']}/targets", headers=headers)
    items = r.json()["items"]
    assert len(items) == 1 and items[0]["customerId"] == str(primary) and items[0]["status"] == "CLICKED"
    r = await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)
    assert r.json()["targetCount"] == 1 and r.json()["clickCount"] == 1 and r.json()["sentCount"] == 1
    r = await client.get(f"/api/v1/campaigns/{other['id']}/targets", headers=headers)
    assert [i["customerId"] for i in r.json()["items"]] == [str(primary)]
    # Each membership moved is published once (campaign.member_repointed), for mirrors built from events.
    moves = await outbox_payloads(client, "campaign.member_repointed")
    assert sorted(
        (e["subject"], e["data"]["fromCustomerId"], e["data"]["customerId"]) for e in moves
    ) == sorted((cid, str(secondary), str(primary)) for cid in (c["id"], other["id"]))
    # the merged id now stands for the primary
    r = await client.post(
        f"/api/v1/campaigns/{other['id']}/targets", json={"customerIds": [str(secondary)]}, headers=headers
    )
    assert r.json()["alreadyTargets"] == [str(primary)]
    batch = [{"customerId": str(secondary), "kind": "OPENED", "occurredAt": iso(NOW), "externalId": "s2"}]
    r = await client.post(
        f"/api/v1/campaigns/{c['id']}/interactions", json={"interactions": batch}, headers=headers
    )
    assert r.status_code == 200, r.text
