"""The customer-list view: search, filters (incl. tags), every column sortable, assignee names."""

import pytest
from sqlalchemy import text

from .conftest import add_team, add_user, contact, create, deliver, opportunity_event, settled


async def names(client, headers, **params) -> list[str]:
    r = await client.get("/api/v1/customers", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [c["fullName"] for c in r.json()["items"]]


@pytest.fixture
async def people(client, auth_headers):
    """Four customers differing in every sortable column."""
    headers = auth_headers()
    zoe = await add_user(client, "Zoe Zimmer")
    abe = await add_user(client, "Abe Adams")
    team = await add_team(client, "EMEA")
    specs = [
        # name, type, status, email, assignee
        ("Bob", "INDIVIDUAL", "CUSTOMER", "d@example.com", zoe, ["vip"]),
        ("Acme", "COMPANY", "LEAD", "c@example.com", abe, ["vip", "eu"]),
        ("Cy", "INDIVIDUAL", "PROSPECT", "a@example.com", None, []),
        ("Dee", "COMPANY", "INACTIVE", "b@example.com", abe, ["eu"]),
    ]
    made = {}
    for name, type_, status, email, assignee, tags in specs:
        body = {
            "type": type_,
            "email": email,
            "tags": tags,
            "status": "LEAD" if status == "INACTIVE" else status,
        }
        body["companyName" if type_ == "COMPANY" else "firstName"] = name
        c = await create(client, headers, **body)
        if status == "INACTIVE":
            await client.patch(
                f"/api/v1/customers/{c['id']}",
                json={"status": "INACTIVE"},
                headers={**headers, "If-Match": "*"},
            )
        if assignee:
            await client.post(
                f"/api/v1/customers/{c['id']}/assign", json={"assignedToId": str(assignee)}, headers=headers
            )
        else:
            await client.post(
                f"/api/v1/customers/{c['id']}/assign", json={"assignedToId": None}, headers=headers
            )
        made[name] = c
    await client.post(
        f"/api/v1/customers/{made['Bob']['id']}/assign", json={"teamId": str(team)}, headers=headers
    )
    await deliver(
        client,
        opportunity_event(made["Bob"]["id"], amount="10.00"),
        opportunity_event(made["Acme"]["id"], amount="300.00"),
        opportunity_event(made["Dee"]["id"], amount="20.00"),
        contact(made["Cy"]["id"], "2030-01-02T00:00:00Z"),
        contact(made["Bob"]["id"], "2030-01-01T00:00:00Z"),
    )
    return {"headers": headers, "zoe": zoe, "abe": abe, "team": team, **made}


SORTS = [
    ("customerNumber", ["Bob", "Acme", "Cy", "Dee"]),
    ("-customerNumber", ["Dee", "Cy", "Acme", "Bob"]),
    ("fullName", ["Acme", "Bob", "Cy", "Dee"]),
    ("-fullName", ["Dee", "Cy", "Bob", "Acme"]),
    ("type,fullName", ["Acme", "Dee", "Bob", "Cy"]),
    ("status", ["Acme", "Cy", "Bob", "Dee"]),  # lifecycle order: LEAD, PROSPECT, CUSTOMER, INACTIVE
    ("-status", ["Dee", "Bob", "Cy", "Acme"]),
    ("email", ["Cy", "Dee", "Acme", "Bob"]),
    ("assignedToName,fullName", ["Acme", "Dee", "Bob", "Cy"]),  # no assignee last
    ("-assignedToName,fullName", ["Bob", "Acme", "Dee", "Cy"]),  # ... in both directions
    ("assignedTo.name,fullName", ["Acme", "Dee", "Bob", "Cy"]),  # as the seed spells it
    ("totalValue", ["Cy", "Bob", "Dee", "Acme"]),
    ("-totalValue", ["Acme", "Dee", "Bob", "Cy"]),
    ("lastContactDate,fullName", ["Bob", "Cy", "Acme", "Dee"]),  # never contacted last
    ("-lastContactDate,fullName", ["Cy", "Bob", "Acme", "Dee"]),
    ("createdAt", ["Bob", "Acme", "Cy", "Dee"]),
    ("-createdAt", ["Dee", "Cy", "Acme", "Bob"]),
    (None, ["Dee", "Cy", "Acme", "Bob"]),  # default: newest first
]


async def test_every_column_of_the_list_view_sorts(client, people):
    for sort, expected in SORTS:
        params = {"sort": sort} if sort else {}
        assert await names(client, people["headers"], **params) == expected, sort


async def test_rows_carry_the_assignee_name(client, people):
    page = (
        await client.get("/api/v1/customers", params={"sort": "fullName"}, headers=people["headers"])
    ).json()
    assert [(c["fullName"], c["assignedToName"]) for c in page["items"]] == [
        ("Acme", "Abe Adams"),
        ("Bob", "Zoe Zimmer"),
        ("Cy", None),
        ("Dee", "Abe Adams"),
    ]


async def test_filters(client, people):
    h = people["headers"]
    assert await names(client, h, tags="eu", sort="fullName") == ["Acme", "Dee"]
    both = await client.get(
        "/api/v1/customers", params=[("tags", "eu"), ("tags", "vip"), ("sort", "fullName")], headers=h
    )
    assert [c["fullName"] for c in both.json()["items"]] == ["Acme", "Bob", "Dee"]  # any of
    assert await names(client, h, tags="nope") == []
    assert await names(client, h, type="COMPANY", sort="fullName") == ["Acme", "Dee"]
    assert await names(client, h, assignedToId=str(people["abe"]), sort="fullName") == ["Acme", "Dee"]
    assert await names(client, h, teamId=str(people["team"])) == ["Bob"]
    assert await names(client, h, tags="eu", status="LEAD") == ["Acme"]


async def test_search_is_a_case_insensitive_substring_of_number_name_email_company(client, people):
    h = people["headers"]
    assert await names(client, h, q="ACM") == ["Acme"]
    assert await names(client, h, q="b@EXAMPLE") == ["Dee"]
    assert await names(client, h, q=people["Cy"]["customerNumber"].lower()) == ["Cy"]
    assert await names(client, h, q="cme", type="COMPANY") == ["Acme"]
    # LIKE wildcards in q are literal characters.
    assert await names(client, h, q="%") == []
    assert await names(client, h, q="_") == []
    assert await names(client, h, q="  ") == ["Dee", "Cy", "Acme", "Bob"]  # blank: no search


EMILE = "\u00c9mile Zola"


async def test_search_follows_every_change_and_keeps_like_semantics(client, auth_headers):
    """On SQLite the search asks a trigram index kept by triggers, then applies the LIKE: what it
    finds must follow creates, updates and deletes, and match exactly what the LIKE alone would."""
    h = auth_headers()
    ada = await create(client, h, firstName="Ada", lastName="Lovelace", email="ada@example.com")
    await create(client, h, companyName='Quote "Q" & 100% Co_op', type="COMPANY", email="q@example.com")
    await create(client, h, firstName=EMILE.split()[0], lastName="Zola", email="emile@example.com")
    assert await names(client, h, q="LOVELACE") == ["Ada Lovelace"]
    assert await names(client, h, q="a lov") == ["Ada Lovelace"]  # across the space
    assert await names(client, h, q="ov") == ["Ada Lovelace"]  # shorter than a trigram
    assert await names(client, h, q='"q"') == ['Quote "Q" & 100% Co_op']
    assert await names(client, h, q="100% co_op") == ['Quote "Q" & 100% Co_op']
    assert await names(client, h, q="0%c") == []  # % is a character, not a wildcard
    # Non-ASCII letters: the same as the LIKE alone finds (the index only proposes candidates).
    assert await names(client, h, q="mile z") == [EMILE]
    renamed = await client.patch(
        f"/api/v1/customers/{ada['id']}",
        json={"lastName": "Byron", "email": "augusta@example.com"},
        headers={**h, "If-Match": f'W/"{ada["version"]}"'},
    )
    assert renamed.status_code == 200, renamed.text
    assert await names(client, h, q="lovelace") == []
    assert await names(client, h, q="byron") == ["Ada Byron"]
    assert await names(client, h, q="augusta@") == ["Ada Byron"]
    if not client.is_postgres:
        db = client.app.state.runtime.db
        async with db.reads() as session:
            indexed = (await session.execute(text("SELECT count(*) FROM customer_search"))).scalar_one()
        assert indexed == 3  # one row per customer, kept by the triggers
        # The index is what a search of 3 or more characters asks first: emptied, it finds nothing
        # (a shorter term is not looked up there).
        async with db.transaction() as session:
            await session.execute(text("DELETE FROM customer_search"))
        assert await names(client, h, q="byron") == []
        assert await names(client, h, q="by") == ["Ada Byron"]


async def test_bad_list_parameters_are_422(client, auth_headers):
    h = auth_headers()
    for params in (
        {"sort": "assignedTo"},
        {"sort": "fullName,password"},
        {"type": "ROBOT"},
        {"priority": "URGENT"},
        {"assignedToId": "bob"},
        {"teamId": "x"},
        {"page": 0},
        {"pageSize": 0},
        {"pageSize": 201},
        {"q": "x" * 201},
        {"tags": ""},
    ):
        r = await client.get("/api/v1/customers", params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"


async def test_paging_defaults_to_25(client, auth_headers):
    h = auth_headers()
    for i in range(27):
        await create(client, h, lastName=f"P{i:02d}")
    page = (await client.get("/api/v1/customers", headers=h)).json()
    assert page["pageSize"] == 25 and len(page["items"]) == 25 and page["total"] == 27
    last = (await client.get("/api/v1/customers", params={"page": 2}, headers=h)).json()
    assert len(last["items"]) == 2 and last["total"] == 27
    # A page past the last one is empty and still says how many there are.
    past = (await client.get("/api/v1/customers", params={"page": 3, "q": "p"}, headers=h)).json()
    assert past == {"items": [], "total": 27, "page": 3, "pageSize": 25}
    searched = (await client.get("/api/v1/customers", params={"q": "p1", "pageSize": 4}, headers=h)).json()
    assert [c["lastName"] for c in searched["items"]] == ["P19", "P18", "P17", "P16"]
    assert searched["total"] == 10


async def test_a_search_counts_to_its_limit_and_then_says_at_least(client, auth_headers, monkeypatch):
    from customer_svc.service import customers

    # The limit is 1,000 in the product; 3 here, so six customers go past it.
    monkeypatch.setattr(customers, "SEARCH_COUNT_LIMIT", 3)
    h = auth_headers()
    for i in range(6):
        await create(client, h, lastName=f"Many{i}")
    await create(client, h, lastName="Fewer")

    async def page(**params):
        r = await client.get("/api/v1/customers", params={"q": "many", "pageSize": 2, **params}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        return [c["lastName"] for c in body["items"]], body["total"], body.get("totalExact", True)

    # More than the limit match: the total is a lower bound, and says so.
    assert await page() == (["Many5", "Many4"], 3, False)
    # Every row up to this page's last exists: the bound is at least that.
    assert await page(page=2) == (["Many3", "Many2"], 4, False)
    # The last page ends the count: exact again.
    assert await page(page=2, pageSize=4) == (["Many1", "Many0"], 6, True)
    # A full page cannot tell it is the last: at least its rows.
    assert await page(page=3) == (["Many1", "Many0"], 6, False)
    # Past the last page nothing says where it ended: the bound alone.
    assert await page(page=9) == ([], 3, False)
    # Under the limit, and without a search term, the total is exact and the page keeps its shape.
    few = (await client.get("/api/v1/customers", params={"q": "fewer"}, headers=h)).json()
    assert few["total"] == 1 and "totalExact" not in few
    everyone = (await client.get("/api/v1/customers", params={"pageSize": 2}, headers=h)).json()
    assert everyone["total"] == 7 and "totalExact" not in everyone
    # Cursor mode counts from the page on, to the same limit.
    await settled(client)
    params = {"q": "many", "cursor": "", "pageSize": 2}
    synced = (await client.get("/api/v1/customers", params=params, headers=h)).json()
    assert len(synced["items"]) == 2 and synced["total"] == 3 and synced["totalExact"] is False
    params["cursor"] = synced["next"]
    synced = (await client.get("/api/v1/customers", params=params, headers=h)).json()
    assert len(synced["items"]) == 2 and synced["total"] == 3 and synced["totalExact"] is False  # 4 left
    whole = (await client.get("/api/v1/customers", params={"q": "many", "cursor": ""}, headers=h)).json()
    assert len(whole["items"]) == 6 and whole["total"] == 6 and "totalExact" not in whole


async def test_a_list_row_is_the_customer_as_get_answers_it(client, people):
    h = people["headers"]
    made = await create(
        client,
        h,
        firstName="Row",
        lastName="Check",
        companyName="Row Check Ltd",
        phone="+1 555 0100",
        tags=["vip"],
        customFields={"tier": "gold", "seats": 3},
        addresses=[
            {"type": "BILLING", "street": "1 Main St", "city": "Springfield", "isPrimary": True},
            {"type": "SHIPPING", "city": "Shelbyville", "country": "US"},
        ],
    )
    await client.post(
        f"/api/v1/customers/{made['id']}/assign", json={"assignedToId": str(people["zoe"])}, headers=h
    )
    one = (await client.get(f"/api/v1/customers/{made['id']}", headers=h)).json()
    page = (await client.get("/api/v1/customers", params={"q": "row check"}, headers=h)).json()
    assert page["total"] == 1
    (row,) = page["items"]
    # The order of a customer's addresses is not part of the answer.
    assert sorted(row.pop("addresses"), key=str) == sorted(one.pop("addresses"), key=str)
    assert row == one and row["assignedToName"] == "Zoe Zimmer" and row["customFields"]["seats"] == 3


async def test_sqlite_gets_planner_statistics_so_a_page_walks_the_lists_order(
    database, settings_with, bus, auth_headers
):
    """The embedded default analyzes its file while it runs (crm_common.planner_statistics): the
    list's page walks the (created_at, id) index instead of sorting every live customer."""
    from crm_common.testing.plugin import eventually, running
    from customer_svc.app import create_app

    url, _ = database
    settings = settings_with(sqlite_analyze_interval_seconds=0.2)
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        h = auth_headers()
        items = [{"lastName": f"Stat{i}", "email": f"stat{i}@example.com"} for i in range(30)]
        made = await client.post("/api/v1/customers/batch/create", json={"items": items}, headers=h)
        assert made.status_code == 200, made.text
        db = app.state.runtime.db
        page = "SELECT id FROM customers WHERE archived_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 25"

        async def analyzed() -> bool:
            async with db.reads() as session:
                tables = (await session.execute(text("SELECT tbl FROM sqlite_stat1"))).scalars()
                return "customers" in set(tables)

        if url.startswith("sqlite"):
            # Started empty: the first round found nothing to record, a later one has the rows.
            assert await eventually(analyzed)
            async with db.reads() as session:
                plan = " ".join(str(r[-1]) for r in await session.execute(text("EXPLAIN QUERY PLAN " + page)))
            assert "ix_customers_created_at_id" in plan and "TEMP B-TREE" not in plan, plan
        listed = (await client.get("/api/v1/customers", params={"pageSize": 25}, headers=h)).json()
        assert [c["lastName"] for c in listed["items"]][:2] == ["Stat29", "Stat28"] and listed["total"] == 30
