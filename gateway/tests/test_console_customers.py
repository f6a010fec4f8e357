"""The customer page's actions over HTTP (the browser tests drive them as a person would): edit with
the version conflict shown, merge refusals, the CSV import's per-row errors and the export."""

import re

import pytest
from crm_common.testing.plugin import running
from crm_gateway.embedded import create_embedded_app

from .conftest import login
from .test_console import csrf_in, sign_in
from .test_dashboard import SERVICES, settings_for


@pytest.fixture
async def gw(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as client:
        yield client


async def _customer(gw, admin, **fields) -> dict:
    r = await gw.post("/api/v1/customers", json={"lastName": "Lovelace", **fields}, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()


def _form_fields(html: str) -> dict:
    """The edit form's inputs as a browser would send them unchanged."""
    fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    for name, options in re.findall(r'<select[^>]*name="([^"]+)">(.*?)</select>', html, re.S):
        fields[name] = re.search(r'<option value="([^"]*)" selected', options).group(1)
    for name, text in re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S):
        fields[name] = text
    return fields


async def test_an_edit_over_someone_elses_save_shows_the_conflict_and_a_second_save_applies_it(gw):
    admin = await login(gw)
    customer = await _customer(gw, admin, email="ada@example.com", phone="111")
    await sign_in(gw)
    form = await gw.get(f"/app/customers/{customer['id']}/edit")
    assert form.status_code == 200
    fields = _form_fields(form.text)
    assert fields["version"] == str(customer["version"]) and fields["phone"] == "111"

    # Someone else changes the phone while this user edits the job title.
    other = await gw.patch(
        f"/api/v1/customers/{customer['id']}",
        json={"phone": "222"},
        headers={**admin, "If-Match": f'W/"{customer["version"]}"'},
    )
    assert other.status_code == 200
    mine = {**fields, "title": "Analyst"}
    conflict = await gw.post(f"/app/customers/{customer['id']}/edit", data=mine)
    assert conflict.status_code == 412
    assert "Someone else saved this customer" in conflict.text
    table = conflict.text[conflict.text.index('id="conflict"') :]
    assert "222" in table  # what they saved
    again = _form_fields(conflict.text)
    assert again["title"] == "Analyst" and again["version"] == str(other.json()["version"])
    unchanged = (await gw.get(f"/api/v1/customers/{customer['id']}", headers=admin)).json()
    assert unchanged["title"] is None  # the refused save wrote nothing

    saved = await gw.post(f"/app/customers/{customer['id']}/edit", data=again)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?notice=saved")
    now = (await gw.get(f"/api/v1/customers/{customer['id']}", headers=admin)).json()
    assert (now["title"], now["phone"]) == ("Analyst", "222")  # theirs kept, mine applied
    page = await gw.get(saved.headers["location"])
    assert "Saved." in page.text


async def test_merge_refusals_show_the_problem_and_a_merge_moves_the_duplicate(gw):
    admin = await login(gw)
    primary = await _customer(gw, admin, email="p@example.com", firstName="Prim")
    duplicate = await _customer(gw, admin, email="d@example.com", firstName="Dup", phone="555")
    await sign_in(gw)
    page = await gw.get(f"/app/customers/{primary['id']}")
    csrf = csrf_in(page.text)
    url = f"/app/customers/{primary['id']}/merge"

    same = await gw.post(url, data={"csrf": csrf, "duplicate": primary["customerNumber"]})
    assert same.status_code == 422 and 'class="message error"' in same.text
    unknown = await gw.post(url, data={"csrf": csrf, "duplicate": "nobody@example.com"})
    assert unknown.status_code == 422 and "No customer has that customer number or email" in unknown.text

    merged = await gw.post(url, data={"csrf": csrf, "duplicate": "D@example.com", "rule-phone": "secondary"})
    assert merged.status_code == 303
    after = (await gw.get(f"/api/v1/customers/{primary['id']}", headers=admin)).json()
    assert after["phone"] == "555"
    gone = (await gw.get(f"/api/v1/customers/{duplicate['id']}", headers=admin)).json()
    assert gone["mergedIntoId"] == primary["id"]
    again = await gw.post(url, data={"csrf": csrf, "duplicate": duplicate["customerNumber"]})
    assert again.status_code == 409 and "merged" in again.text.lower()
    tombstone = await gw.get(f"/app/customers/{duplicate['id']}")
    assert "Merged into another customer" in tombstone.text and "/merge" not in tombstone.text


async def test_the_import_shows_each_refused_row_and_keeps_the_others(gw):
    admin = await login(gw)
    await sign_in(gw)
    form = await gw.get("/app/customers/import")
    csv = "email,firstName,lastName,status\nok@example.com,Ok,Row,LEAD\nbad-email,No,Good,LEAD\nx@example.com,X,Y,NOPE\n"
    r = await gw.post(
        "/app/customers/import",
        data={"csrf": csrf_in(form.text)},
        files={"file": ("people.csv", csv.encode(), "text/csv")},
    )
    assert r.status_code == 200, r.text
    errors = r.text[r.text.index('id="import-errors"') :]
    assert re.search(r"<td>3</td><td>email</td>", errors) and re.search(r"<td>4</td><td>status</td>", errors)
    counts = r.text[r.text.index('id="import-counts"') :]
    assert re.search(r"Created</dt><dd>1</dd>", counts) and re.search(r"Refused</dt><dd>2</dd>", counts)
    found = await gw.get("/api/v1/customers", params={"q": "example.com"}, headers=admin)
    assert [c["email"] for c in found.json()["items"]] == ["ok@example.com"]

    no_file = await gw.post("/app/customers/import", data={"csrf": csrf_in(form.text)})
    assert no_file.status_code == 422 and "Choose a CSV file" in no_file.text


async def test_the_export_is_the_lists_customers_as_csv(gw):
    admin = await login(gw)
    await _customer(gw, admin, email="one@example.com", lastName="Exported")
    await _customer(gw, admin, email="two@example.com", lastName="Other")
    await sign_in(gw)
    r = await gw.get("/app/customers/export", params={"q": "exported"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert "one@example.com" in r.text and "two@example.com" not in r.text


async def test_a_convert_shows_its_opportunity_on_the_next_page(gw):
    """The convert's consistency token goes with the redirect, so the page after it already lists the
    opportunity pipeline-svc makes from the convert's event."""
    admin = await login(gw)
    lead = await _customer(gw, admin, email="lead@example.com")
    await sign_in(gw)
    page = await gw.get(f"/app/customers/{lead['id']}")
    converted = await gw.post(
        f"/app/customers/{lead['id']}/convert",
        data={"csrf": csrf_in(page.text), "title": "First order", "amount": "300.00", "currency": "USD"},
    )
    assert converted.status_code == 303
    assert any(c.startswith("crm_console_seen=") for c in converted.headers.get_list("set-cookie"))
    after = await gw.get(converted.headers["location"])
    assert "First order" in after.text and "Converted to a customer." in after.text
    assert 'id="customer-status">CUSTOMER<' in after.text
    # Read once: the cookie goes with that page.
    assert any(
        c.startswith("crm_console_seen=") and "Max-Age=0" in c for c in after.headers.get_list("set-cookie")
    )


async def test_an_edit_of_other_fields_leaves_multi_line_notes_alone(gw):
    admin = await login(gw)
    customer = await _customer(gw, admin, email="notes@example.com", notes="line one\nline two")
    await sign_in(gw)
    fields = _form_fields((await gw.get(f"/app/customers/{customer['id']}/edit")).text)
    # As a browser sends a textarea: line breaks as CRLF.
    fields["notes"] = fields["notes"].replace("\n", "\r\n")
    saved = await gw.post(f"/app/customers/{customer['id']}/edit", data={**fields, "phone": "999"})
    assert saved.status_code == 303
    now = (await gw.get(f"/api/v1/customers/{customer['id']}", headers=admin)).json()
    assert (now["phone"], now["notes"]) == ("999", "line one\nline two")


async def test_a_search_past_its_count_limit_shows_at_least_and_lets_you_page_on(gw, monkeypatch):
    from customer_svc.service import customers

    # 1,000 in the product; 2 here, so a console page of 25 goes past it.
    monkeypatch.setattr(customers, "SEARCH_COUNT_LIMIT", 2)
    admin = await login(gw)
    items = [{"lastName": f"Plenty{i:02d}", "email": f"plenty{i}@example.com"} for i in range(27)]
    made = await gw.post("/api/v1/customers/batch/create", json={"items": items}, headers=admin)
    assert made.status_code == 200 and all(r["status"] == 201 for r in made.json()["results"]), made.text

    data = (await gw.get("/api/v1/views/customer-list/data", params={"q": "plenty"}, headers=admin)).json()
    assert len(data["items"]) == 25 and data["total"] == 25 and data["totalExact"] is False
    await sign_in(gw)
    first = await gw.get("/app/customers", params={"q": "plenty"})
    assert first.status_code == 200
    assert re.search(r"<caption>25\+ ", first.text) and "Page 1 of 1+" in first.text
    assert "page=2" in first.text  # "Next", though 25 of "at least 25" would be the last page
    # The last page knows where the list ends: exact again.
    last = await gw.get("/app/customers", params={"q": "plenty", "page": 2})
    assert (
        re.search(r"<caption>27 ", last.text)
        and "Page 2 of 2" in last.text
        and "Page 2 of 2+" not in last.text
    )
    # Past the end: nothing more to page to, though the count still says "at least".
    past = await gw.get("/app/customers", params={"q": "plenty", "page": 3})
    assert past.status_code == 200 and "page=4" not in past.text and "page=2" in past.text
    exact = (await gw.get("/api/v1/views/customer-list/data", params={"q": "plenty01"}, headers=admin)).json()
    assert exact["total"] == 1 and "totalExact" not in exact
