import uuid
from datetime import timedelta

import pytest
from campaign_svc.models import CampaignInteraction, CampaignTarget

from .conftest import NOW, active_campaign, count_rows, create_campaign, iso, with_targets


def item(cid, kind, ext, at=None):
    return {"customerId": str(cid), "kind": kind, "occurredAt": iso(at or NOW), "externalId": ext}


async def post(client, headers, campaign_id, items):
    return await client.post(
        f"/api/v1/campaigns/{campaign_id}/interactions", json={"interactions": items}, headers=headers
    )


async def test_funnel_moves_forward_and_counts_once(client, headers):
    c = await active_campaign(client, headers)
    a, b, d = await with_targets(client, headers, c["id"], 3)
    r = await post(
        client,
        headers,
        c["id"],
        [
            item(a, "SENT", "1"),
            item(a, "OPENED", "2"),
            item(a, "OPENED", "3"),  # a second open: still one opener
            item(a, "CLICKED", "4"),
            item(b, "SENT", "5"),
            item(b, "BOUNCED", "6"),
            item(d, "CLICKED", "7"),  # a click implies sent, delivered, opened
        ],
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["recorded"] == 7 and out["duplicates"] == 0 and out["statusChanges"] == 3
    camp = out["campaign"]
    assert (
        camp["sentCount"],
        camp["deliveredCount"],
        camp["openCount"],
        camp["clickCount"],
        camp["bouncedCount"],
    ) == (
        3,
        2,
        2,
        2,
        1,
    )
    # a late DELIVERED for a clicker does not move it back
    r = await post(client, headers, c["id"], [item(a, "DELIVERED", "8")])
    assert r.json()["statusChanges"] == 0
    r = await client.get(
        f"/api/v1/campaigns/{c['id']}/targets", params={"status": "CLICKED"}, headers=headers
    )
    assert {i["customerId"] for i in r.json()["items"]} == {str(a), str(d)}
    # the counters always equal the members' steps
    r = await client.get(f"/api/v1/campaigns/{c['id']}/targets", params={"pageSize": 200}, headers=headers)
    items = r.json()["items"]
    camp = (await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)).json()
    assert camp["openCount"] == sum(1 for i in items if i["openedAt"])
    assert camp["sentCount"] == sum(1 for i in items if i["sentAt"])


async def test_duplicate_external_ids(client, headers):
    c = await active_campaign(client, headers)
    (a,) = await with_targets(client, headers, c["id"], 1)
    r = await post(client, headers, c["id"], [item(a, "OPENED", "x"), item(a, "CLICKED", "x")])
    assert r.json()["recorded"] == 1 and r.json()["duplicates"] == 1
    assert r.json()["campaign"]["clickCount"] == 0
    r = await post(client, headers, c["id"], [item(a, "OPENED", "x")])
    assert r.json()["recorded"] == 0 and r.json()["duplicates"] == 1
    assert await count_rows(client, CampaignInteraction) == 1


async def test_bad_items_write_nothing(client, headers):
    c = await active_campaign(client, headers, endDate=iso(NOW + timedelta(days=10)))
    (a,) = await with_targets(client, headers, c["id"], 1)
    stranger = uuid.uuid4()
    r = await post(
        client,
        headers,
        c["id"],
        [
            item(a, "OPENED", "ok"),
            item(stranger, "OPENED", "s"),
            item(a, "OPENED", "early", at=NOW - timedelta(days=30)),
            item(a, "OPENED", "future", at=NOW + timedelta(days=1)),
        ],
    )
    assert r.status_code == 422 and r.json()["code"] == "INVALID_INTERACTIONS"
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"interactions.1.customerId", "interactions.2.occurredAt", "interactions.3.occurredAt"}
    r = await post(client, headers, c["id"], [item(a, "TELEPATHY", "k")])
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("interactions.0.kind")
    r = await post(client, headers, c["id"], [item(a, "CONVERTED", "k")])
    assert r.status_code == 422
    assert await count_rows(client, CampaignInteraction) == 0
    async with client.app.state.runtime.db.transaction() as s:
        t = (await s.execute(CampaignTarget.__table__.select())).one()
        assert t.status == "TARGETED" and t.opened_at is None


@pytest.mark.parametrize("settings_extra", [{"interaction_batch_limit": 3}])
async def test_batch_limit(client, headers, settings_extra):
    c = await active_campaign(client, headers)
    (a,) = await with_targets(client, headers, c["id"], 1)
    r = await post(client, headers, c["id"], [item(a, "SENT", str(n)) for n in range(4)])
    assert r.status_code == 422 and r.json()["code"] == "INTERACTION_BATCH_TOO_LARGE"
    r = await post(client, headers, c["id"], [item(a, "SENT", str(n)) for n in range(3)])
    assert r.status_code == 200


async def test_not_running_campaign(client, headers):
    c = await create_campaign(client, headers)
    (a,) = await with_targets(client, headers, c["id"], 1)
    r = await post(client, headers, c["id"], [item(a, "SENT", "1")])
    assert r.status_code == 409 and r.json()["code"] == "CAMPAIGN_NOT_RUNNING"
    r = await post(client, headers, uuid.uuid4(), [item(a, "SENT", "1")])
    assert r.status_code == 404


async def test_counters_equal_a_full_recount(client, headers):
    import random

    from campaign_svc.service.tracking import recount

    c = await active_campaign(client, headers)
    ids = await with_targets(client, headers, c["id"], 8)
    kinds = ["SENT", "DELIVERED", "BOUNCED", "OPENED", "CLICKED", "RESPONDED", "UNSUBSCRIBED"]
    rng = random.Random(7)
    for b in range(4):
        batch = [item(rng.choice(ids), rng.choice(kinds), f"{b}-{n}") for n in range(10)]
        batch.append(batch[0] | {})  # an in-batch duplicate
        r = await post(client, headers, c["id"], batch)
        assert r.status_code == 200, r.text
    before = (await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)).json()
    async with client.app.state.runtime.db.transaction() as s:
        await recount(s, uuid.UUID(c["id"]))
    after = (await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)).json()
    counters = [k for k in before if k.endswith("Count")]
    assert {k: before[k] for k in counters} == {k: after[k] for k in counters}


async def test_removing_a_member_takes_its_steps_off_the_counters(client, headers):
    c = await active_campaign(client, headers)
    a, b = await with_targets(client, headers, c["id"], 2)
    r = await post(client, headers, c["id"], [item(a, "CLICKED", "1"), item(b, "SENT", "2")])
    assert r.json()["campaign"]["clickCount"] == 1
    r = await client.delete(f"/api/v1/campaigns/{c['id']}/targets/{a}", headers=headers)
    assert r.status_code == 204
    camp = (await client.get(f"/api/v1/campaigns/{c['id']}", headers=headers)).json()
    assert (camp["targetCount"], camp["sentCount"], camp["openCount"], camp["clickCount"]) == (1, 1, 0, 0)
