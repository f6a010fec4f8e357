"""The board's unfiltered summaries come from `stage_totals`, which triggers keep: after every kind
of write they equal the sums over the opportunities themselves."""

import asyncio
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa
from crm_common.testing.plugin import admitted
from pipeline_svc.models import Opportunity, StageTotal


async def summed_from_rows(client) -> dict:
    """{(stageId, currency): (count, amount)} straight from the opportunities."""
    async with client.app.state.runtime.db.transaction(read_only=True) as s:
        rows = await s.execute(sa.select(Opportunity.stage_id, Opportunity.currency, Opportunity.amount))
        sums: dict = defaultdict(lambda: [0, Decimal("0.00")])
        for stage_id, currency, amount in rows:
            sums[(str(stage_id), currency)][0] += 1
            sums[(str(stage_id), currency)][1] += Decimal(str(amount)).quantize(Decimal("0.01"))
    return {k: (n, f"{a:.2f}") for k, (n, a) in sums.items()}


async def board_summaries(client, headers) -> dict:
    r = await client.get("/api/v1/opportunities/board", params={"cardsPerColumn": 1}, headers=headers)
    assert r.status_code == 200, r.text
    return {
        (column["stageId"], t["currency"]): (t["count"], t["totalAmount"])
        for column in r.json()["columns"]
        for t in column["summary"]["totals"]
    }


async def test_totals_follow_creates_edits_line_items_moves_wins_and_losses(
    client, auth_headers, stages, new_opportunity, new_product
):
    h = auth_headers("sales_rep")
    s = await stages()
    a = await new_opportunity(amount="100.10", currency="USD")
    b = await new_opportunity(amount="250.00", currency="EUR")
    c = await new_opportunity(currency="USD")  # amount from its line items
    d = await new_opportunity(amount="5.55", currency="GBP")
    assert await board_summaries(client, h) == await summed_from_rows(client)

    r = await client.patch(
        f"/api/v1/opportunities/{a['id']}", json={"amount": "120.00", "version": 1}, headers=h
    )
    assert r.status_code == 200, r.text
    r = await client.patch(
        f"/api/v1/opportunities/{d['id']}", json={"currency": "JPY", "version": 1}, headers=h
    )
    assert r.status_code == 200, r.text
    seat = await new_product(name="Seat", price="19.99")
    r = await client.post(
        f"/api/v1/opportunities/{c['id']}/products",
        json={"productId": seat["id"], "quantity": "3"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/opportunities/{b['id']}/stage", json={"stageId": s["Qualification"]["id"]}, headers=h
    )
    assert r.status_code == 200, r.text
    assert (await client.post(f"/api/v1/opportunities/{a['id']}/win", headers=h)).status_code == 200
    r = await client.post(f"/api/v1/opportunities/{b['id']}/lose", json={"lostReason": "price"}, headers=h)
    assert r.status_code == 200, r.text

    expected = await summed_from_rows(client)
    assert await board_summaries(client, h) == expected
    assert expected == {
        (s["Prospecting"]["id"], "USD"): (1, "59.97"),
        (s["Prospecting"]["id"], "JPY"): (1, "5.55"),
        (s["Closed Won"]["id"], "USD"): (1, "120.00"),
        (s["Closed Lost"]["id"], "EUR"): (1, "250.00"),
    }
    # A stage everybody left has no totals row in the answer (zero counts are not shown).
    assert (s["Qualification"]["id"], "EUR") not in await board_summaries(client, h)


async def test_filtered_boards_still_sum_the_rows(client, auth_headers, new_opportunity, new_user):
    h = auth_headers("sales_manager")
    alice = await new_user("Alice Ames")
    await new_opportunity(amount="10.00", ownerId=str(alice))
    await new_opportunity(amount="32.00")
    r = await client.get("/api/v1/opportunities/board", params={"ownerId": str(alice)}, headers=h)
    (column,) = [c for c in r.json()["columns"] if c["summary"]["count"]]
    assert column["summary"]["totals"][0]["totalAmount"] == "10.00"


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_concurrent_writes_in_opposite_directions_keep_exact_totals(
    client, auth_headers, stages, new_opportunity
):
    """Moves between two stages both ways, amount edits and wins at once: no deadlock, no lost
    update, totals equal to the rows."""
    h = auth_headers("sales_rep")
    s = await stages()
    first, second = s["Prospecting"]["id"], s["Qualification"]["id"]
    opportunities = [await new_opportunity(amount=f"{i}.25", currency="USD") for i in range(1, 25)]
    half = len(opportunities) // 2
    for o in opportunities[:half]:
        r = await client.post(f"/api/v1/opportunities/{o['id']}/stage", json={"stageId": second}, headers=h)
        assert r.status_code == 200, r.text
    rng = random.Random(7)

    async def write(i: int, o: dict):
        url = f"/api/v1/opportunities/{o['id']}"
        kind = i % 3
        if kind == 0:
            stage = second if i >= half else first
            return await admitted(lambda: client.post(f"{url}/stage", json={"stageId": stage}, headers=h))
        if kind == 1:
            return await admitted(lambda: client.post(f"{url}/win", headers=h))
        amount = f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"

        async def patch():
            current = (await admitted(lambda: client.get(url, headers=h))).json()
            return await client.patch(url, json={"amount": amount, "version": current["version"]}, headers=h)

        return await admitted(patch)

    responses = await asyncio.gather(*(write(i, o) for i, o in enumerate(opportunities)))
    assert [r.status_code for r in responses] == [200] * len(opportunities), [r.text for r in responses]
    assert await board_summaries(client, h) == await summed_from_rows(client)
    async with client.app.state.runtime.db.transaction(read_only=True) as session:
        slots = (await session.execute(sa.select(sa.func.count(sa.distinct(StageTotal.slot))))).scalar_one()
    assert slots > 1  # the writes were spread over several rows


async def test_the_migration_counts_opportunities_that_existed_before_it(
    client, auth_headers, new_opportunity
):
    from pathlib import Path

    import pipeline_svc
    from crm_common.migrations import downgrade, migrate

    h = auth_headers("sales_rep")
    await new_opportunity(amount="10.00", currency="USD")
    await new_opportunity(amount="7.50", currency="EUR")
    before = await board_summaries(client, h)
    db = client.app.state.runtime.db
    script_location = Path(pipeline_svc.__file__).parent / "migrations"

    await downgrade(db, script_location, "5a7c1e9d3b20")
    await migrate(db, script_location)
    assert await board_summaries(client, h) == before == await summed_from_rows(client)
    await new_opportunity(amount="1.00", currency="USD")  # and the triggers are back
    assert await board_summaries(client, h) == await summed_from_rows(client)
