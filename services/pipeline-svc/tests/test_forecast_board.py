"""Forecast figures against hand-computed values, and the kanban board."""

import uuid
from datetime import UTC, date, datetime

import pytest
from crm_common.contracts.customer import CustomerUpdated
from crm_common.events.envelope import event_from
from pipeline_svc.service.forecast import confidence, period_range

from_iso = date.fromisoformat


@pytest.mark.parametrize(
    ("period", "today", "start", "end"),
    [
        ("month", "2028-02-10", "2028-02-01", "2028-02-29"),
        ("month", "2026-12-31", "2026-12-01", "2026-12-31"),
        ("quarter", "2026-05-15", "2026-04-01", "2026-06-30"),
        ("quarter", "2026-11-02", "2026-10-01", "2026-12-31"),
        ("year", "2026-07-04", "2026-01-01", "2026-12-31"),
    ],
)
def test_period_ranges(period, today, start, end):
    assert period_range(period, from_iso(today)) == (from_iso(start), from_iso(end))


def test_confidence_follows_the_seed():
    assert [confidence(n) for n in (0, 1, 2, 3, 10, 19, 20, 100)] == [0, 10, 10, 15, 50, 95, 95, 95]


@pytest.fixture
async def pipeline(client, auth_headers, stages, new_customer, new_user, new_opportunity):
    """Six open opportunities closing this quarter (five USD, one EUR) and three that do not count."""
    s = await stages()
    alice, bob = await new_user("Alice Ames"), await new_user("Bob Burns")
    acme, globex = await new_customer("Acme Ltd"), await new_customer("Globex")
    start, end = period_range("quarter", datetime.now(UTC).date())
    inside = start.isoformat()
    h = auth_headers("sales_manager")

    async def opp(amount, stage=None, owner=alice, customer=acme, close=inside, **fields):
        o = await new_opportunity(
            headers=h,
            amount=amount,
            ownerId=str(owner),
            customerId=str(customer),
            **({"expectedCloseDate": close} if close else {}),
            **fields,
        )
        if stage:
            r = await client.post(
                f"/api/v1/opportunities/{o['id']}/stage", json={"stageId": s[stage]["id"]}, headers=h
            )
            assert r.status_code == 200, r.text
            o = r.json()
        return o

    made = {
        "p1": await opp("1000.00", close=end.isoformat()),
        "q": await opp("2000.00", "Qualification"),
        "pr": await opp("3000.00", "Proposal", owner=bob, customer=globex),
        "n": await opp("4000.00", "Negotiation"),
        "p2": await opp("333.33", title="Odd one"),
        "eur": await opp("500.00", "Proposal", owner=bob, currency="EUR"),
        "won": await opp("10000.00"),
        "later": await opp("7000.00", close=date(end.year + 1, 6, 1).isoformat()),
        "undated": await opp("8000.00", close=None),
    }
    r = await client.patch(
        f"/api/v1/opportunities/{made['p2']['id']}", json={"probability": 33, "version": 1}, headers=h
    )
    assert r.status_code == 200
    assert (await client.post(f"/api/v1/opportunities/{made['won']['id']}/win", headers=h)).status_code == 200
    return {
        "stages": s,
        "alice": alice,
        "bob": bob,
        "acme": acme,
        "globex": globex,
        "start": start,
        "end": end,
        **made,
    }


async def test_forecast_figures_per_currency(client, auth_headers, pipeline):
    r = await client.get("/api/v1/opportunities/forecast", headers=auth_headers("sales_rep"))
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["period"] == "quarter"
    assert f["dateRange"] == {"start": pipeline["start"].isoformat(), "end": pipeline["end"].isoformat()}
    assert f["totalOpportunities"] == 6 and f["confidence"] == 30
    eur, usd = f["currencies"]
    assert usd == {
        "currency": "USD",
        "totalOpportunities": 5,
        "totalValue": "10333.33",
        # 100 + 500 + 1500 + 3000 + 333.33 x 33% (109.9989)
        "weightedValue": "5210.00",
        "bestCase": "4000.00",
        "mostLikely": "5333.33",
        "worstCase": "1000.00",
        "byStage": [
            {
                "stageId": pipeline["stages"]["Prospecting"]["id"],
                "stageName": "Prospecting",
                "count": 2,
                "totalValue": "1333.33",
                "weightedValue": "210.00",
            },
            {
                "stageId": pipeline["stages"]["Qualification"]["id"],
                "stageName": "Qualification",
                "count": 1,
                "totalValue": "2000.00",
                "weightedValue": "500.00",
            },
            {
                "stageId": pipeline["stages"]["Proposal"]["id"],
                "stageName": "Proposal",
                "count": 1,
                "totalValue": "3000.00",
                "weightedValue": "1500.00",
            },
            {
                "stageId": pipeline["stages"]["Negotiation"]["id"],
                "stageName": "Negotiation",
                "count": 1,
                "totalValue": "4000.00",
                "weightedValue": "3000.00",
            },
        ],
        "confidence": 25,
    }
    assert eur["currency"] == "EUR" and eur["totalOpportunities"] == 1
    assert (
        eur["totalValue"],
        eur["weightedValue"],
        eur["mostLikely"],
        eur["bestCase"],
        eur["worstCase"],
    ) == (
        "500.00",
        "250.00",
        "500.00",
        "0.00",
        "0.00",
    )
    assert eur["confidence"] == 10


async def test_forecast_filters_by_owner_and_range(client, auth_headers, pipeline):
    h = auth_headers("sales_rep")
    f = (
        await client.get(
            "/api/v1/opportunities/forecast", params={"ownerId": str(pipeline["bob"])}, headers=h
        )
    ).json()
    assert f["ownerId"] == str(pipeline["bob"]) and f["totalOpportunities"] == 2
    assert [(c["currency"], c["totalValue"]) for c in f["currencies"]] == [
        ("EUR", "500.00"),
        ("USD", "3000.00"),
    ]

    nobody = (
        await client.get("/api/v1/opportunities/forecast", params={"ownerId": str(uuid.uuid4())}, headers=h)
    ).json()
    assert nobody["totalOpportunities"] == 0 and nobody["currencies"] == [] and nobody["confidence"] == 0

    year_after = pipeline["end"].year + 1
    r = await client.get(
        "/api/v1/opportunities/forecast",
        params={"from": f"{year_after}-01-01", "to": f"{year_after}-12-31"},
        headers=h,
    )
    f = r.json()
    assert f["period"] == "custom" and f["totalOpportunities"] == 1
    assert f["currencies"][0]["totalValue"] == "7000.00" and f["currencies"][0]["worstCase"] == "7000.00"

    year = (await client.get("/api/v1/opportunities/forecast", params={"period": "year"}, headers=h)).json()
    assert year["dateRange"]["start"].endswith("-01-01") and year["totalOpportunities"] >= 6


BAD_FORECAST_PARAMETERS = [
    {"period": "week"},
    {"from": "2026-01-01"},
    {"to": "2026-01-01"},
    {"from": "2026-02-01", "to": "2026-01-01"},
    {"from": "2026-01-01", "to": "2026-02-01", "period": "month"},
    {"from": "soon", "to": "2026-02-01"},
    {"ownerId": "bob"},
]


async def test_bad_forecast_parameters_are_422(client, auth_headers):
    for params in BAD_FORECAST_PARAMETERS:
        r = await client.get("/api/v1/opportunities/forecast", params=params, headers=auth_headers())
        assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR", (params, r.text)


async def test_the_board(client, auth_headers, pipeline):
    r = await client.get("/api/v1/opportunities/board", headers=auth_headers("sales_rep"))
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["cardsPerColumn"] == 25
    columns = {c["label"]: c for c in board["columns"]}
    assert list(columns) == [
        "Prospecting",
        "Qualification",
        "Proposal",
        "Negotiation",
        "Closed Won",
        "Closed Lost",
    ]
    assert columns["Closed Won"]["isWon"] and columns["Closed Won"]["color"] == "#22C55E"

    prospecting = columns["Prospecting"]
    # Soonest expected close first, undated last.
    assert [c["amount"] for c in prospecting["cards"]] == ["333.33", "1000.00", "7000.00", "8000.00"]
    assert prospecting["cards"][-1]["expectedCloseDate"] is None
    assert prospecting["summary"] == {
        "count": 4,
        "totals": [{"currency": "USD", "count": 4, "totalAmount": "16333.33", "avgAmount": "4083.33"}],
    }
    card = prospecting["cards"][0]
    assert (
        card["customerName"] == "Acme Ltd" and card["ownerName"] == "Alice Ames" and card["status"] == "OPEN"
    )
    assert set(card) == {
        "id", "title", "customerId", "customerName", "amount", "currency", "probability",
        "expectedCloseDate", "ownerId", "ownerName", "status",
    }  # fmt: skip

    proposal = columns["Proposal"]
    assert proposal["summary"]["count"] == 2
    assert proposal["summary"]["totals"] == [
        {"currency": "EUR", "count": 1, "totalAmount": "500.00", "avgAmount": "500.00"},
        {"currency": "USD", "count": 1, "totalAmount": "3000.00", "avgAmount": "3000.00"},
    ]
    assert (
        columns["Closed Won"]["summary"]["count"] == 1
        and columns["Closed Won"]["cards"][0]["status"] == "WON"
    )
    assert (
        columns["Closed Lost"]["summary"] == {"count": 0, "totals": []}
        and columns["Closed Lost"]["cards"] == []
    )
    assert not any(c["hasMore"] for c in board["columns"])


async def test_board_filters_and_card_limits(client, auth_headers, stages, pipeline, bus):
    h = auth_headers("sales_rep")

    async def board(**params):
        r = await client.get("/api/v1/opportunities/board", params=params, headers=h)
        assert r.status_code == 200, r.text
        return {c["label"]: c for c in r.json()["columns"]}

    bob = await board(ownerId=str(pipeline["bob"]))
    assert {k: c["summary"]["count"] for k, c in bob.items() if c["summary"]["count"]} == {"Proposal": 2}
    globex = await board(customerId=str(pipeline["globex"]))
    assert [c["customerName"] for col in globex.values() for c in col["cards"]] == ["Globex"]
    limited = await board(cardsPerColumn=1)
    assert len(limited["Prospecting"]["cards"]) == 1 and limited["Prospecting"]["hasMore"] is True
    assert limited["Prospecting"]["summary"]["count"] == 4
    assert (
        await client.get("/api/v1/opportunities/board", params={"cardsPerColumn": 0}, headers=h)
    ).status_code == 422
    assert (
        await client.get("/api/v1/opportunities/board", params={"cardsPerColumn": 201}, headers=h)
    ).status_code == 422
    team = await board(teamId=str(uuid.uuid4()))
    assert sum(c["summary"]["count"] for c in team.values()) == 0

    # customer.updated keeps the names on cards current.
    payload = CustomerUpdated(
        customer_id=pipeline["globex"],
        customer_number="CUST-2026-000009",
        full_name="Globex Corporation",
        status="CUSTOMER",
        changes={"companyName": "Globex Corporation"},
    )
    await bus.publish(
        [event_from(payload, service="customer", subject=payload.customer_id, sequence=2)], timeout=5
    )
    renamed = await board(customerId=str(pipeline["globex"]))
    assert [c["customerName"] for col in renamed.values() for c in col["cards"]] == ["Globex Corporation"]

    # Inactive stages have no column.
    s = await stages()
    admin = auth_headers()
    await client.patch(
        f"/api/v1/stages/{s['Closed Lost']['id']}", json={"isActive": False, "version": 1}, headers=admin
    )
    assert "Closed Lost" not in await board()
