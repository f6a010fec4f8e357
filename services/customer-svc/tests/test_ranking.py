"""GET /api/v1/customers/ranking: top customers by won or open value, one ranking per currency."""

import pytest

from .conftest import create, deliver, opportunity_event

RANKING = "/api/v1/customers/ranking"


def won(customer, amount, currency="USD", **kw):
    return opportunity_event(
        customer["id"], amount=amount, currency=currency, status="WON", routing_key="opportunity.won", **kw
    )


def ranked(body) -> dict[str, list[tuple[str, str]]]:
    """{currency: [(lastName, value), ...]} of a ranking response."""
    return {
        g["currency"]: [(i["customer"]["lastName"], i["value"]) for i in g["items"]]
        for g in body["currencies"]
    }


@pytest.fixture
async def book(client, auth_headers):
    h = auth_headers()
    people = {name: await create(client, h, lastName=name) for name in ("Ada", "Bo", "Cy", "Di")}
    await deliver(
        client,
        won(people["Ada"], "100.00"),
        won(people["Bo"], "300.00"),
        won(people["Bo"], "50.00", "EUR"),
        won(people["Cy"], "1000.00", "EUR"),
        opportunity_event(people["Di"]["id"], amount="999.00"),  # open only: no lifetime value
    )
    return h, people


async def test_each_currency_is_ranked_on_its_own(client, book):
    h, _ = book
    r = await client.get(RANKING, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["measure"] == "lifetimeValue"
    # 1000 EUR is not compared with 300 USD: each currency has its own list, highest first.
    assert ranked(body) == {
        "EUR": [("Cy", "1000.00"), ("Bo", "50.00")],
        "USD": [("Bo", "300.00"), ("Ada", "100.00")],
    }
    bo = body["currencies"][1]["items"][0]["customer"]
    assert bo["status"] == "CUSTOMER" and bo["valueTotals"]  # the whole customer, promoted by the win


async def test_limit_currency_status_and_open_value(client, book):
    h, _ = book
    assert ranked((await client.get(RANKING, params={"limit": 1}, headers=h)).json()) == {
        "EUR": [("Cy", "1000.00")],
        "USD": [("Bo", "300.00")],
    }
    only_eur = await client.get(RANKING, params={"currency": "EUR"}, headers=h)
    assert ranked(only_eur.json()) == {"EUR": [("Cy", "1000.00"), ("Bo", "50.00")]}
    # A currency asked for is answered even when nobody has value in it.
    assert ranked((await client.get(RANKING, params={"currency": "JPY"}, headers=h)).json()) == {"JPY": []}
    # Every won customer was promoted to CUSTOMER: none left among the leads.
    assert ranked((await client.get(RANKING, params={"status": "LEAD"}, headers=h)).json()) == {}
    open_ = await client.get(RANKING, params={"measure": "totalValue"}, headers=h)
    assert ranked(open_.json()) == {"USD": [("Di", "999.00")]}


async def test_values_follow_lost_deals_and_merges(client, book):
    h, people = book
    ada, bo = people["Ada"], people["Bo"]
    r = await client.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": ada["id"], "secondaryCustomerId": bo["id"]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert ranked((await client.get(RANKING, headers=h)).json()) == {
        "EUR": [("Cy", "1000.00"), ("Ada", "50.00")],
        "USD": [("Ada", "400.00")],
    }


async def test_a_deal_lost_after_being_won_leaves_the_ranking(client, auth_headers):
    h = auth_headers()
    c = await create(client, h, lastName="Eve")
    deal = won(c, "70.00")
    await deliver(client, deal)
    assert ranked((await client.get(RANKING, headers=h)).json()) == {"USD": [("Eve", "70.00")]}
    reopened = opportunity_event(
        c["id"],
        opportunity_id=deal.data["opportunityId"],
        amount="70.00",
        status="LOST",
        sequence=2,
        routing_key="opportunity.lost",
    )
    await deliver(client, reopened)
    assert ranked((await client.get(RANKING, headers=h)).json()) == {}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"measure": "revenue"}, "measure"),
        ({"currency": "XYZ"}, "currency"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"status": "FRIEND"}, "status"),
    ],
)
async def test_bad_parameters_are_a_problem_naming_the_field(client, auth_headers, params, field):
    r = await client.get(RANKING, params=params, headers=auth_headers())
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    # e.g. `currency.0` for the first value of a repeated parameter
    assert field in {e["field"].split(".")[0] for e in r.json()["errors"]}, r.json()


async def test_the_ranking_needs_customer_access(client, auth_headers):
    r = await client.get(RANKING, headers=auth_headers("nobody"))
    assert r.status_code == 403


async def test_the_migration_ranks_customers_who_had_values_before_it(client, book):
    """An install upgraded from before the ranking table gets rows for the totals it already had."""
    from pathlib import Path

    import customer_svc
    from crm_common.migrations import downgrade, migrate

    h, _ = book
    before = (await client.get(RANKING, headers=h)).json()
    db = client.app.state.runtime.db
    script_location = Path(customer_svc.__file__).parent / "migrations"

    await downgrade(db, script_location, "8d31f521dff9")
    await migrate(db, script_location)
    assert (await client.get(RANKING, headers=h)).json() == before
    assert before["currencies"]
