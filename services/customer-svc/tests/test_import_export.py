"""POST /customers/import (CSV, JSON lines; streamed upsert by email) and GET /customers/export."""

import asyncio
import csv
import io
import json
import uuid

from crm_common.testing.plugin import admitted
from customer_svc.models import Customer
from customer_svc.service.exporter import EXPORT_COLUMNS

from .conftest import add_user, count_rows, create, outbox_payloads

CSV = {"Content-Type": "text/csv"}
JSONL = {"Content-Type": "application/x-ndjson"}


async def do_import(client, headers, body, *, content=CSV, **params):
    data = body.encode() if isinstance(body, str) else body
    return await client.post(
        "/api/v1/customers/import", content=data, params=params, headers={**headers, **content}
    )


async def by_email(client, headers, email):
    page = (await client.get("/api/v1/customers", params={"q": email}, headers=headers)).json()
    return next((c for c in page["items"] if c["email"].lower() == email.lower()), None)


async def test_csv_import_creates_customers(client, auth_headers):
    user = uuid.uuid4()
    h = auth_headers("sales_rep", user_id=user)
    body = (
        "email,firstName,lastName,type,companyName,tags,customFields,annualRevenue,status\r\n"
        'ada@example.com,Ada,Lovelace,,,vip; math ,"{""tier"": ""gold""}",1000,PROSPECT\r\n'
        "acme@example.com,,,COMPANY,Acme Ltd,,,,\r\n"
        "\r\n"
        "bo@example.com,Bo,,,,,,,\r\n"
    )
    r = await do_import(client, h, body)
    assert r.status_code == 200, r.text
    report = r.json()
    # The customer of each row, by line (the blank line 4 is no row).
    assert [(x["line"], x["outcome"]) for x in report.pop("records")] == [
        (2, "CREATED"),
        (3, "CREATED"),
        (5, "CREATED"),
    ]
    assert report == {
        "dryRun": False,
        "completed": True,
        "format": "csv",
        "rows": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
        "errors": [],
        "errorsTruncated": False,
        "ignoredColumns": [],
    }
    ada = await by_email(client, h, "ada@example.com")
    assert ada["fullName"] == "Ada Lovelace" and ada["tags"] == ["vip", "math"]
    assert ada["customFields"] == {"tier": "gold"} and ada["annualRevenue"] == "1000.00"
    assert ada["status"] == "PROSPECT" and ada["assignedToId"] == str(user)
    acme = await by_email(client, h, "acme@example.com")
    assert acme["type"] == "COMPANY" and acme["fullName"] == "Acme Ltd" and acme["status"] == "LEAD"
    numbers = sorted(
        int(c["customerNumber"][-6:]) for c in (ada, acme, await by_email(client, h, "bo@example.com"))
    )
    assert numbers == [1, 2, 3]
    created = await outbox_payloads(client, "customer.created")
    assert len(created) == 3 and {e["data"]["email"] for e in created} == {
        "ada@example.com",
        "acme@example.com",
        "bo@example.com",
    }
    assert all(e["data"]["createdBy"] == str(user) for e in created)


async def test_rows_matching_an_email_update_only_the_cells_given(client, auth_headers):
    h = auth_headers()
    ada = await create(
        client, h, firstName="Ada", lastName="L", phone="111", email="ada@example.com", tags=["x"]
    )
    same = await create(client, h, firstName="Same", email="same@example.com")
    body = "email,lastName,phone,priority\nADA@example.com,Lovelace,,HIGH\nsame@example.com,,,\n"
    report = (await do_import(client, h, body)).json()
    assert (report["created"], report["updated"], report["unchanged"], report["failed"]) == (0, 1, 1, 0)
    now = await by_email(client, h, "ada@example.com")
    assert now["lastName"] == "Lovelace" and now["fullName"] == "Ada Lovelace"
    assert now["phone"] == "111" and now["tags"] == ["x"] and now["priority"] == "HIGH"
    assert now["version"] == ada["version"] + 1 and now["email"] == "ADA@example.com"
    (event,) = await outbox_payloads(client, "customer.updated")
    assert event["sequence"] == 2 and event["subject"] == ada["id"]
    assert event["data"]["changes"] == {
        "email": "ADA@example.com",
        "lastName": "Lovelace",
        "priority": "HIGH",
        "fullName": "Ada Lovelace",
    }
    assert await by_email(client, h, "same@example.com") == same


async def test_bad_rows_are_reported_by_line_and_good_rows_kept(client, auth_headers):
    h = auth_headers()
    body = (
        "email,firstName,status,type,employeeCount\n"  # 1
        "ok1@example.com,A,,,\n"  # 2
        "not-an-email,B,,,\n"  # 3
        "x3@example.com,C,WHALE,,\n"  # 4
        "x4@example.com,,,,\n"  # 5: an individual needs a name
        "x5@example.com,E,,\n"  # 6: a field missing
        'x6@example.com,"F"G,,,\n'  # 7: broken quoting
        'ok2@example.com,"Multi\n'  # 8
        'line",,,\n'  # 9
        "x10@example.com,J,INACTIVE,,\n"  # 10: a new customer cannot start INACTIVE
        "x11@example.com,K,,,many\n"  # 11
        "x12@example.com,L,,COMPANY,\n"  # 12: a company needs companyName
        "ok3@example.com,M,,,7\n"  # 13
    )
    report = (await do_import(client, h, body)).json()
    assert report["rows"] == 11 and report["created"] == 3 and report["failed"] == 8 and report["completed"]
    errors = {(e["line"], e["field"], e["code"]) for e in report["errors"]}
    assert errors == {
        (3, "email", "value_error"),
        (4, "status", "enum"),
        (5, "firstName", "missing"),
        (6, None, "invalid_row"),
        (7, None, "invalid_row"),
        (10, "status", "invalid_status"),
        (11, "employeeCount", "int_parsing"),
        (12, "companyName", "missing"),
    }
    assert len(report["errors"]) == 8
    assert "quoting" in next(e["message"] for e in report["errors"] if e["line"] == 7)
    assert (await by_email(client, h, "ok2@example.com"))["firstName"] == "Multi\nline"
    assert (await by_email(client, h, "ok3@example.com"))["employeeCount"] == 7
    assert await count_rows(client) == 3


async def test_a_wrong_header_or_an_empty_file_is_a_422_and_writes_nothing(client, auth_headers):
    h = auth_headers()
    cases = [
        ("email,firstName,password\na@example.com,A,x\n", "IMPORT_INVALID_HEADER", ["password"]),
        ("firstName,lastName\nA,B\n", "IMPORT_INVALID_HEADER", ["email"]),
        ("email,email\na@example.com,b@example.com\n", "IMPORT_INVALID_HEADER", ["email"]),
        ('"email,firstName\n', None, None),  # a header quote never closing: not completed
        ("", "IMPORT_EMPTY", None),
        ("\n\n", "IMPORT_EMPTY", None),
    ]
    for body, code, columns in cases:
        r = await do_import(client, h, body)
        if code is None:
            assert r.status_code == 200 and r.json()["completed"] is False, r.text
            continue
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == code and r.json()["errors"][0]["field"] == "header"
        if columns:
            assert r.json()["columns"] == columns
    empty_jsonl = await do_import(client, h, "\n", content=JSONL)
    assert empty_jsonl.status_code == 422 and empty_jsonl.json()["code"] == "IMPORT_EMPTY"
    assert await count_rows(client) == 0


async def test_a_file_that_breaks_off_keeps_the_rows_before(client, auth_headers):
    h = auth_headers()
    body = 'email,firstName\na@example.com,A\nb@example.com,"B\nc@example.com,C\n'
    report = (await do_import(client, h, body)).json()
    assert report["completed"] is False and report["created"] == 1
    assert report["errors"] == [
        {
            "line": 3,
            "field": None,
            "message": "The quoted field opened on line 3 never closes.",
            "code": "unterminated_quote",
        }
    ]
    bad_utf8 = b"email,firstName\nd@example.com,D\ne@example.com,\xff\xfe\n"
    report = (await do_import(client, h, bad_utf8)).json()
    assert report["completed"] is False and report["errors"][0]["code"] == "invalid_encoding"
    assert await by_email(client, h, "a@example.com") and await by_email(client, h, "d@example.com")
    assert await by_email(client, h, "c@example.com") is None


async def test_dry_run_counts_and_writes_nothing(client, auth_headers):
    h = auth_headers()
    await create(client, h, firstName="Old", email="old@example.com")
    body = (
        "email,firstName\n"
        "old@example.com,Newer\n"
        "new@example.com,N\n"
        "NEW@example.com,N2\n"  # the same new email again: an update of the row above
        "NEW@example.com,N2\n"  # ... and again, unchanged
        "bad,X\n"
    )
    report = (await do_import(client, h, body, dryRun="true")).json()
    assert report["dryRun"] is True
    assert (report["created"], report["updated"], report["unchanged"], report["failed"]) == (1, 2, 1, 1)
    assert await count_rows(client) == 1
    assert len(await outbox_payloads(client)) == 1  # the create above only
    real = (await do_import(client, h, body)).json()
    assert (real["created"], real["updated"], real["unchanged"], real["failed"]) == (1, 2, 1, 1)
    assert (await by_email(client, h, "new@example.com"))["firstName"] == "N2"


async def test_json_lines(client, auth_headers):
    h = auth_headers()
    grace = await add_user(client, "Grace")
    lines = [
        {
            "email": "j1@example.com",
            "firstName": "J",
            "addresses": [{"city": "Oslo", "isPrimary": True}],
            "assignedToId": str(grace),
        },
        {
            "email": "j2@example.com",
            "type": "COMPANY",
            "companyName": "Jay Inc",
            "customFields": {"seats": 3},
        },
        {"email": "j3@example.com", "firstName": "X", "customerNumber": "CUST-1"},
        {"email": "j4@example.com", "firstName": "X", "colour": "red"},
        ["not", "an", "object"],
        {"email": "j6@example.com", "firstName": "X", "assignedToId": str(uuid.uuid4())},
    ]
    body = "\n".join(json.dumps(x) for x in lines) + "\n{broken json\n"
    report = (await do_import(client, h, body, content=JSONL)).json()
    assert report["format"] == "jsonl" and report["rows"] == 7 and report["created"] == 2
    assert {(e["line"], e["field"], e["code"]) for e in report["errors"]} == {
        (3, "customerNumber", "read_only"),
        (4, "colour", "extra_forbidden"),
        (5, None, "invalid_row"),
        (6, "assignedToId", "unknown_user"),
        (7, None, "invalid_row"),
    }
    j1 = await by_email(client, h, "j1@example.com")
    assert j1["addresses"][0]["city"] == "Oslo" and j1["assignedToName"] == "Grace"
    update = json.dumps({"email": "j1@example.com", "addresses": [{"city": "Bergen"}, {"street": "Main St"}]})
    report = (
        await do_import(client, h, update, format="jsonl", content={"Content-Type": "text/plain"})
    ).json()
    assert report["updated"] == 1
    assert sorted(str(a["city"]) for a in (await by_email(client, h, "j1@example.com"))["addresses"]) == [
        "Bergen",
        "None",
    ]
    again = (await do_import(client, h, update, content=JSONL)).json()
    assert (again["updated"], again["unchanged"]) == (0, 1)


async def test_content_type_and_access(client, auth_headers):
    h = auth_headers()
    r = await do_import(client, h, "email\n", content={"Content-Type": "application/pdf"})
    assert r.status_code == 415 and r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = await do_import(client, h, "email\n", format="xml")
    assert r.status_code == 422
    assert (await do_import(client, auth_headers("nobody"), "email\n")).status_code == 403
    assert (await client.get("/api/v1/customers/export", headers=auth_headers("nobody"))).status_code == 403


def parse(text: str) -> list[dict]:
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


async def test_export_streams_csv_with_the_list_filters(client, auth_headers):
    h = auth_headers()
    grace = await add_user(client, "Grace")
    a = await create(
        client,
        h,
        firstName="Ann",
        status="CUSTOMER",
        tags=["vip", "eu"],
        customFields={"k": 1},
        phone="+44 20 7946",
        notes='=HYPERLINK("http://evil")',
    )
    await client.post(f"/api/v1/customers/{a['id']}/assign", json={"assignedToId": str(grace)}, headers=h)
    await create(client, h, firstName="Bob")
    r = await client.get("/api/v1/customers/export", params={"status": "CUSTOMER"}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="customers-')
    (row,) = parse(r.text)
    assert list(row) == list(EXPORT_COLUMNS)
    assert row["id"] == a["id"] and row["fullName"] == "Ann" and row["tags"] == "vip;eu"
    assert json.loads(row["customFields"]) == {"k": 1} and row["assignedToName"] == "Grace"
    assert row["phone"] == "+44 20 7946"  # a number is not a formula
    assert row["notes"] == '\'=HYPERLINK("http://evil")'  # a formula is defused
    assert row["totalValue"] == "0.00" and row["createdAt"].endswith("Z")
    everyone = parse(
        (await client.get("/api/v1/customers/export", params={"sort": "-fullName"}, headers=h)).text
    )
    assert [x["fullName"] for x in everyone] == ["Bob", "Ann"]
    bad = await client.get("/api/v1/customers/export", params={"sort": "password"}, headers=h)
    assert bad.status_code == 422 and bad.json()["code"] == "INVALID_SORT"


async def test_merged_customers_are_left_out_of_the_export_unless_asked(client, auth_headers):
    h = auth_headers()
    p, s = await create(client, h, firstName="P"), await create(client, h, firstName="S")
    await client.post(
        "/api/v1/customers/merge",
        json={"primaryCustomerId": p["id"], "secondaryCustomerId": s["id"]},
        headers=h,
    )
    assert [x["fullName"] for x in parse((await client.get("/api/v1/customers/export", headers=h)).text)] == [
        "P"
    ]
    rows = parse(
        (
            await client.get(
                "/api/v1/customers/export", params={"includeMerged": "true", "sort": "fullName"}, headers=h
            )
        ).text
    )
    assert [(x["fullName"], x["mergedIntoId"]) for x in rows] == [("P", ""), ("S", p["id"])]
    # Importing the tombstone back is refused, not a resurrection.
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[1]))
    writer.writeheader()
    writer.writerow(rows[1])
    report = (await do_import(client, h, out.getvalue())).json()
    assert report["failed"] == 1 and "merged" in report["errors"][0]["message"]


async def test_an_export_imports_back_unchanged_and_edits_apply(client, auth_headers):
    h = auth_headers()
    for i in range(3):
        await create(
            client,
            h,
            firstName=f"F{i}",
            tags=["a", "b"],
            customFields={"n": i},
            notes="@mention me",
            phone="-123",
            nextContactDate="2030-01-01T09:30:00Z",
            annualRevenue="12.5",
        )
    exported = (await client.get("/api/v1/customers/export", headers=h)).text
    report = (await do_import(client, h, exported.encode())).json()
    assert (report["rows"], report["unchanged"], report["failed"]) == (3, 3, 0), report["errors"]
    assert "customerNumber" in report["ignoredColumns"] and "fullName" in report["ignoredColumns"]
    edited = exported.replace("F1,", "Changed,", 1)
    report = (await do_import(client, h, edited.encode())).json()
    assert (report["updated"], report["unchanged"]) == (1, 2)
    assert await outbox_payloads(client, "customer.updated") and await count_rows(client) == 3


async def test_a_large_file_streams_through_in_batches_with_consecutive_numbers(client, auth_headers):
    h = auth_headers()
    rows = [f"bulk{i}@example.com,N{i}" for i in range(1200)]
    rows[700] = "bulk3@example.com,Again"  # the same email in a later batch: an update

    async def chunks():
        data = ("email,firstName\n" + "\n".join(rows) + "\n").encode()
        for i in range(0, len(data), 997):  # odd-sized chunks: lines and UTF-8 split anywhere
            yield data[i : i + 997]

    r = await client.post("/api/v1/customers/import", content=chunks(), headers={**h, **CSV})
    report = r.json()
    assert (report["rows"], report["created"], report["updated"]) == (1200, 1199, 1), report
    assert (await by_email(client, h, "bulk3@example.com"))["firstName"] == "Again"
    page = (
        await client.get(
            "/api/v1/customers", params={"sort": "customerNumber", "pageSize": 200, "page": 6}, headers=h
        )
    ).json()
    assert page["total"] == 1199
    assert [int(c["customerNumber"][-6:]) for c in page["items"]] == list(range(1001, 1200))


async def test_an_import_racing_creates_gets_distinct_consecutive_numbers(client, auth_headers):
    h = auth_headers()
    body = "email,firstName\n" + "".join(f"imp{i}@example.com,I{i}\n" for i in range(600))
    creates = [
        admitted(
            lambda i=i: client.post(
                "/api/v1/customers", json={"firstName": "C", "email": f"api{i}@example.com"}, headers=h
            )
        )
        for i in range(20)
    ]
    results = await asyncio.gather(do_import(client, h, body), *creates)
    assert results[0].json()["created"] == 600
    assert all(r.status_code == 201 for r in results[1:])
    async with client.app.state.runtime.db.transaction() as s:
        from sqlalchemy import select

        numbers = sorted(int(n[-6:]) for n in (await s.execute(select(Customer.customer_number))).scalars())
    assert numbers == list(range(1, 621))


async def test_formula_cells_are_defused_in_every_field_including_tags(client, auth_headers):
    h = auth_headers()
    hostile = ['=HYPERLINK("http://evil","x")', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+cmd|x", "-2+3"]
    for n, tag in enumerate(hostile):
        await create(client, h, firstName=f"T{n}", tags=[tag, "vip"], companyName=tag)
    rows = parse((await client.get("/api/v1/customers/export", params={"sort": "fullName"}, headers=h)).text)
    for row, tag in zip(rows, hostile, strict=True):
        assert row["tags"] == f"'{tag};vip", row["tags"]
        assert row["companyName"] == f"'{tag}"
    # The import takes the apostrophe off again: an export round-trips unchanged.
    report = (await do_import(client, h, _csv(rows))).json()
    assert (report["failed"], report["unchanged"]) == (0, len(hostile)), report
    assert (await by_email(client, h, rows[0]["email"]))["tags"] == [hostile[0], "vip"]


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


async def test_a_bad_json_line_is_that_lines_error_and_the_rows_around_it_are_kept(client, auth_headers):
    h = auth_headers()
    deep = '{"email": "deep@example.com", "customFields": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    too_deep = '{"email": "deep33@example.com", "customFields": ' + "[" * 32 + "]" * 32 + "}"
    lines = [
        json.dumps({"email": "before@example.com", "firstName": "Before"}),
        deep,
        too_deep,
        json.dumps({"email": "nul@example.com", "firstName": "A\x00B"}),
        json.dumps({"email": "date@example.com", "firstName": "D", "nextContactDate": 1767225600}),
        "{not json",
        json.dumps({"email": "after@example.com", "firstName": "After"}),
    ]
    r = await do_import(client, h, "\n".join(lines) + "\n", content=JSONL)
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["rows"], report["created"], report["failed"]) == (7, 2, 5)
    assert {(e["line"], e["field"], e["code"]) for e in report["errors"]} == {
        (2, None, "invalid_row"),
        (3, None, "invalid_row"),
        (4, "firstName", "string_nul"),
        (5, "nextContactDate", "datetime_type"),
        (6, None, "invalid_row"),
    }
    assert "deeper than 32" in next(e["message"] for e in report["errors"] if e["line"] == 2)
    for email in ("before@example.com", "after@example.com"):
        assert await by_email(client, h, email) is not None
    # A CSV cell holding deep JSON is that row's error too.
    r = await do_import(client, h, 'email,customFields\nc@example.com,"' + "[" * 5000 + "]" * 5000 + '"\n')
    assert r.status_code == 200 and r.json()["failed"] == 1, r.text


async def test_the_import_answers_the_id_of_each_row_it_created_or_updated(client, auth_headers):
    h = auth_headers()
    ada = await create(client, h, firstName="Ada", email="ada@example.com")
    body = (
        "email,firstName,lastName\n"
        "new1@example.com,New,One\n"
        "ada@example.com,Ada,Lovelace\n"
        "not-an-email,Bad,Row\n"
        "new2@example.com,New,Two\n"
    )
    report = (await do_import(client, h, body)).json()
    assert (report["created"], report["updated"], report["failed"]) == (2, 1, 1)
    records = report["records"]
    assert [(r["line"], r["outcome"]) for r in records] == [(2, "CREATED"), (3, "UPDATED"), (5, "CREATED")]
    assert records[1]["id"] == ada["id"]
    for record, email in ((records[0], "new1@example.com"), (records[2], "new2@example.com")):
        got = await client.get(f"/api/v1/customers/{record['id']}", headers=h)
        assert got.status_code == 200 and got.json()["email"] == email
    dry = (await do_import(client, h, "email,firstName\nnew3@example.com,X\n", dryRun="true")).json()
    assert dry["created"] == 1 and dry["records"] == []
