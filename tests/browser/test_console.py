"""The web console in a real browser, used the way a person would: Playwright drives Debian's
Chromium (/usr/bin/chromium; no browser is ever downloaded) against a real `crm up` process.

One browser and one `crm up` for the module. Screenshots of each page go to build/console-screenshots/
(see docs/console.md); every page visited is also scanned with axe-core (vendored, test-only) for
serious or critical accessibility findings, and watched for Content-Security-Policy violations."""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "console-screenshots"
AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
ADMIN_EMAIL = "admin@example.com"
PASSWORD = "browser-Secret-pass-1"
STARTUP_TIMEOUT = 90.0
NOTE_TIMEOUT = 15.0


def _free_port() -> int:
    """Below the kernel's ephemeral range, so no outgoing connection takes it before `crm up` binds it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found")


@pytest.fixture(scope="module")
def crm(tmp_path_factory) -> Iterator[str]:
    if not CHROMIUM.exists():
        # A failure, not a skip: CI must not pass without the browser tests having run.
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests drive Debian's Chromium. "
            "Install it with `apt-get install chromium` (never a downloaded browser).",
            pytrace=False,
        )
    data = tmp_path_factory.mktemp("console-crm")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {
        "CRM_DATA_DIR": str(data),
        "CRM_PORT": str(port),
        "CRM_ADMIN_EMAIL": ADMIN_EMAIL,
        "CRM_ADMIN_PASSWORD": PASSWORD,
        "PYTHONUNBUFFERED": "1",
    }
    log = open(data / "crm-up.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_gateway.cli", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if process.poll() is not None:
            pytest.fail(f"`crm up` exited:\n{(data / 'crm-up.log').read_text()[-3000:]}", pytrace=False)
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"`crm up` not healthy:\n{(data / 'crm-up.log').read_text()[-3000:]}", pytrace=False)
        time.sleep(0.1)
    yield base
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    log.close()


@pytest.fixture(scope="module")
def browser(crm):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def api(crm) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=crm, timeout=10) as client:
        r = client.post("/api/v1/auth/token", data={"username": ADMIN_EMAIL, "password": PASSWORD})
        assert r.status_code == 200, r.text
        client.headers["authorization"] = f"Bearer {r.json()['access_token']}"
        yield client


class Person:
    """A browser tab and what it saw: CSP violations and accessibility findings fail the test."""

    def __init__(self, browser, base: str, locale: str = "en-US"):
        self.context = browser.new_context(
            base_url=base, locale=locale, viewport={"width": 1400, "height": 900}
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.csp_violations: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.csp_violations.append(f"{m.text} (at {self.page.url}: {m.location})")
                if "Content Security Policy" in m.text
                else None
            ),
        )

    def check(self, name: str) -> None:
        """Screenshot the page, scan it with axe-core (run through the devtools protocol, which the
        page's CSP does not apply to) and check no asset was refused by the CSP."""
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        self.page.evaluate(AXE + "\n;0")
        found = self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target)}))"""
        )
        assert not found, f"{name}: accessibility findings\n{json.dumps(found, indent=1)}"
        assert not self.csp_violations, f"{name}: CSP violations {self.csp_violations}"

    def sign_in(self, email: str, password: str = PASSWORD, words=("Email", "Password", "Sign in")) -> None:
        """`words`: the form's labels and button in the page's language."""
        self.page.goto("/app")
        assert "/app/login" in self.page.url  # no session: the sign-in page
        self.page.get_by_label(words[0]).fill(email)
        self.page.get_by_label(words[1]).fill(password)
        self.page.get_by_role("button", name=words[2]).click()
        self.page.wait_for_url(re.compile(r".*/app$"))


def drag(page, card, target_list) -> None:
    """Drag with the mouse in small steps, as a hand does (SortableJS follows pointer events)."""
    box = card.bounding_box()
    goal = target_list.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 12)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 10, box["y"] + 20, steps=5)
    page.mouse.move(goal["x"] + goal["width"] / 2, goal["y"] + 20, steps=20)
    page.mouse.up()


def test_a_salesperson_signs_in_adds_a_customer_and_wins_a_deal(crm, browser, api):
    from playwright.sync_api import expect

    # Someone else in the list, so the search has something to leave out.
    assert (
        api.post("/api/v1/customers", json={"email": "decoy@example.com", "lastName": "Decoy"}).status_code
        == 201
    )
    person = Person(browser, crm)
    page = person.page
    person.sign_in(ADMIN_EMAIL)
    expect(page.get_by_role("heading", name="CRM Dashboard")).to_be_visible()
    person.check("01-dashboard")

    # Create a customer through the form, then find it with the list's search.
    surname = f"Hopper{uuid.uuid4().hex[:6]}"
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customer list")).to_be_visible()
    page.get_by_role("link", name="New customer").click()
    page.get_by_label("First name").fill("Grace")
    page.get_by_label("Last name").fill(surname)
    page.get_by_label("Email").fill(f"{surname.lower()}@example.com")
    person.check("02-customer-new")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", name=f"Grace {surname}")).to_be_visible()

    page.get_by_role("link", name="Customers").click()
    page.get_by_label("Search").fill(surname)
    row_link = page.locator("#customer-table").get_by_role("link", name=f"Grace {surname}", exact=True)
    expect(row_link).to_be_visible()  # htmx replaced the table with the search's result
    expect(page.locator("#customer-table tbody tr")).to_have_count(1)
    person.check("03-customers")

    # Its page shows the "Customer created" note, written by an event a few ms after the create.
    row_link.click()
    deadline = time.monotonic() + NOTE_TIMEOUT
    while not page.locator("#timeline").get_by_text("Customer created").count():
        assert time.monotonic() < deadline, "the 'Customer created' note never reached the timeline"
        time.sleep(0.3)
        page.reload()

    page.get_by_label("Title", exact=True).fill("Console deal")
    page.get_by_label("Amount", exact=True).fill("1234.50")
    page.get_by_role("button", name="Create opportunity").click()
    expect(page.locator("#opportunities")).to_contain_text("Console deal")
    person.check("04-customer")
    customer_id = page.url.rsplit("/", 1)[-1]
    [opportunity] = api.get("/api/v1/opportunities", params={"customerId": customer_id}).json()["items"]

    # The kanban: drag the card to the next stage; the API agrees.
    page.get_by_role("link", name="Pipeline").click()
    lists = page.locator("ul.cards")
    card = page.locator(f'li.kcard[data-id="{opportunity["id"]}"]')
    expect(lists.nth(0).locator(f'[data-id="{opportunity["id"]}"]')).to_be_visible()
    next_stage = lists.nth(1).get_attribute("data-stage-id")
    drag(page, card, lists.nth(1))
    expect(lists.nth(1).locator(f'[data-id="{opportunity["id"]}"]')).to_be_visible()
    deadline = time.monotonic() + 10
    while api.get(f"/api/v1/opportunities/{opportunity['id']}").json()["stageId"] != next_stage:
        assert time.monotonic() < deadline, "the API never saw the move"
        time.sleep(0.2)
    person.check("05-pipeline")

    # Qualification now asks for a description before an opportunity leaves it: dragging on to the
    # next stage is refused, the card returns and says what it needs.
    version = api.get(f"/api/v1/stages/{next_stage}").json()["version"]
    stage = api.patch(
        f"/api/v1/stages/{next_stage}", json={"requirements": ["description"], "version": version}
    )
    assert stage.status_code == 200, stage.text
    page.reload()
    expect(page.locator("section.column").nth(1)).to_contain_text("To leave: description")
    drag(page, page.locator(f'li.kcard[data-id="{opportunity["id"]}"]'), lists.nth(2))
    expect(page.locator("#board-message")).to_contain_text("requires description")
    card = lists.nth(1).locator(f'[data-id="{opportunity["id"]}"]')
    expect(card.locator(".unmet")).to_contain_text("description (Qualification)")
    assert api.get(f"/api/v1/opportunities/{opportunity['id']}").json()["stageId"] == next_stage
    person.check("05b-pipeline-refused")
    again = api.patch(
        f"/api/v1/stages/{next_stage}", json={"requirements": [], "version": stage.json()["version"]}
    )
    assert again.status_code == 200, again.text

    # A refused move (onto the won stage: winning is its own action) shows why; the card returns.
    page.reload()
    won_column = page.locator("section.column", has=page.get_by_role("heading", name="Closed Won"))
    drag(page, page.locator(f'li.kcard[data-id="{opportunity["id"]}"]'), won_column.locator("ul.cards"))
    expect(page.locator("#board-message")).to_contain_text("closes the opportunity")
    expect(lists.nth(1).locator(f'[data-id="{opportunity["id"]}"]')).to_be_visible()
    assert api.get(f"/api/v1/opportunities/{opportunity['id']}").json()["stageId"] == next_stage
    person.check("05c-pipeline-won-stage-refused")

    # Win it, and the dashboard's revenue shows it.
    page.locator(f'li.kcard[data-id="{opportunity["id"]}"]').get_by_role("button", name="Win").click()
    expect(page.locator("#board-message")).to_contain_text("Won: Console deal")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#total-revenue")).to_contain_text("1,234.50 USD")
    person.check("06-dashboard-after-win")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/app/login$"))
    person.check("07-sign-in")
    page.goto("/app/customers")
    assert "/app/login" in page.url  # signed out means signed out
    person.context.close()


def test_a_read_only_user_finds_no_pipeline_actions(crm, browser, api):
    from playwright.sync_api import expect

    email = f"reader-{uuid.uuid4().hex[:6]}@example.com"
    r = api.post(
        "/api/v1/users",
        json={"email": email, "fullName": "Rita Reader", "password": PASSWORD, "roles": ["read_only"]},
    )
    assert r.status_code == 201, r.text
    customer = api.post("/api/v1/customers", json={"email": f"x{email}", "lastName": "Watched"}).json()
    deadline = time.monotonic() + 10
    while (
        o := api.post(
            "/api/v1/opportunities",
            json={"title": "Look only", "customerId": customer["id"], "amount": "5.00"},
        )
    ).status_code != 201:
        assert time.monotonic() < deadline, o.text  # pipeline-svc hears of the customer by an event
        time.sleep(0.2)

    person = Person(browser, crm)
    page = person.page
    person.sign_in(email)
    page.get_by_role("link", name="Pipeline").click()
    card = page.locator(f'li.kcard[data-id="{o.json()["id"]}"]')
    expect(card).to_contain_text("Look only")
    expect(card.get_by_role("button")).to_have_count(0)  # no win, no lose
    assert page.locator(".kanban").get_attribute("data-drag") == "off"
    person.check("08-pipeline-read-only")
    page.get_by_role("link", name="Customers").click()
    expect(page.get_by_role("link", name="New customer")).to_have_count(0)
    person.context.close()


def test_the_views_labels_follow_the_browsers_language(crm, browser):
    from playwright.sync_api import expect

    person = Person(browser, crm, locale="zh-CN")  # the browser sends Accept-Language: zh-CN
    page = person.page
    person.sign_in(ADMIN_EMAIL, words=("邮箱", "密码", "登录"))  # the console's words follow too
    expect(page.get_by_role("heading", name="CRM仪表盘")).to_be_visible()
    page.get_by_role("link", name="客户", exact=True).click()
    expect(page.get_by_role("heading", name="客户列表")).to_be_visible()
    expect(page.get_by_role("columnheader", name="客户编号")).to_be_visible()
    expect(page.get_by_role("link", name="新增客户")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "zh"
    person.check("09-customers-zh")
    person.context.close()


def test_a_salesperson_works_on_a_customer_page_and_imports_and_exports(crm, browser, api, tmp_path):
    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:6]
    lead = api.post(
        "/api/v1/customers",
        json={"email": f"lead-{tag}@example.com", "firstName": "Lea", "lastName": f"D{tag}"},
    ).json()
    duplicate = api.post(
        "/api/v1/customers",
        json={
            "email": f"dup-{tag}@example.com",
            "firstName": "Lea",
            "lastName": f"D{tag}",
            "phone": "+1 555 0100",
        },
    ).json()
    colleague = api.post(
        "/api/v1/users",
        json={
            "email": f"sam-{tag}@example.com",
            "fullName": f"Sam {tag}",
            "password": PASSWORD,
            "roles": ["sales_rep"],
        },
    )
    assert colleague.status_code == 201, colleague.text
    person = Person(browser, crm)
    page = person.page
    person.sign_in(ADMIN_EMAIL)
    page.goto(f"/app/customers/{lead['id']}")

    # Log a call already made: it is on the timeline at once (the page reads its own write).
    page.get_by_text("Add activity", exact=True).first.click()
    page.get_by_label("Kind").select_option("CALL")
    page.get_by_role("region", name="Timeline").get_by_label("Subject").fill("Discovery call")
    page.get_by_label("Already done").check()
    page.get_by_role("button", name="Add activity").click()
    expect(page.locator("#flash")).to_contain_text("Activity added.")
    expect(page.locator("#timeline")).to_contain_text("Discovery call")

    # Assign to a colleague, then convert with a first opportunity.
    page.get_by_role("region", name="Assign").get_by_label("Assigned to").select_option(label=f"Sam {tag}")
    page.get_by_role("button", name="Save assignment").click()
    expect(page.locator("#assigned-to")).to_have_text(f"Sam {tag}")
    page.get_by_label("Opportunity title").fill("First order")
    page.locator("#conv-amount").fill("300.00")
    page.get_by_role("button", name="Convert", exact=True).click()
    expect(page.locator("#customer-status")).to_have_text("CUSTOMER")
    expect(page.locator("#opportunities")).to_contain_text(
        "First order"
    )  # made by pipeline-svc from the event
    person.check("10-customer-actions")

    # Merging the customer into itself is refused with the API's message; the duplicate merges in.
    page.get_by_label("Duplicate (customer number or email)").fill(lead["customerNumber"])
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator("#flash")).to_have_class(re.compile("error"))
    page.get_by_label("Duplicate (customer number or email)").fill(duplicate["email"])
    page.locator("summary", has_text="Which values to keep").click()
    page.get_by_label("Phone", exact=True).select_option("secondary")
    page.get_by_role("button", name="Merge", exact=True).click()
    expect(page.locator("#flash")).to_contain_text("The duplicate was merged into this customer.")
    expect(page.locator("dl.fields")).to_contain_text("+1 555 0100")
    assert api.get(f"/api/v1/customers/{duplicate['id']}").json()["mergedIntoId"] == lead["id"]

    # Edit while someone else saves: the conflict is shown, and saving again applies both.
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Job title").fill("Buyer")
    current = api.get(f"/api/v1/customers/{lead['id']}")
    other = api.patch(
        f"/api/v1/customers/{lead['id']}",
        json={"industry": "Retail"},
        headers={"If-Match": current.headers["etag"]},
    )
    assert other.status_code == 200, other.text
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#conflict")).to_contain_text("Retail")
    person.check("11-customer-edit-conflict")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#flash")).to_contain_text("Saved.")
    saved = api.get(f"/api/v1/customers/{lead['id']}").json()
    assert (saved["title"], saved["industry"]) == ("Buyer", "Retail")

    # Import a file with a bad row: the row and its problem are listed, the good one is imported.
    csv = tmp_path / "people.csv"
    csv.write_text(f"email,firstName,lastName\nnew-{tag}@example.com,Nia,Import\nnot-an-email,Bad,Row\n")
    page.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Import customers").click()
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.locator("#import-errors")).to_contain_text("email")
    expect(page.locator("#import-errors tbody tr")).to_have_count(1)
    expect(page.locator("#import-errors tbody tr td").first).to_have_text("3")
    assert api.get("/api/v1/customers", params={"q": f"new-{tag}"}).json()["total"] == 1
    person.check("12-customer-import")

    # Export what the search shows.
    page.get_by_role("link", name="Back to the customers").click()
    page.get_by_label("Search").fill(f"new-{tag}")
    expect(page.locator("#customer-table tbody tr")).to_have_count(1)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert f"new-{tag}@example.com" in exported and lead["email"] not in exported
    person.context.close()


def test_support_and_marketing_pages_and_the_agenda(crm, browser, api):
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    tag = uuid.uuid4().hex[:6]
    customer = api.post(
        "/api/v1/customers", json={"email": f"t-{tag}@example.com", "lastName": f"T{tag}"}
    ).json()
    deadline = time.monotonic() + 10
    while (
        ticket := api.post(
            "/api/v1/tickets",
            json={
                "subject": f"Cannot log in {tag}",
                "description": "Since this morning.",
                "type": "PROBLEM",
                "priority": "URGENT",
                "customerId": customer["id"],
            },
        )
    ).status_code != 201:
        assert time.monotonic() < deadline, ticket.text  # ticket-svc hears of the customer by an event
        time.sleep(0.2)
    ticket = ticket.json()
    now = datetime.now(UTC)
    for subject, start in (("Overdue follow-up", now - timedelta(days=2)), ("Call today", now)):
        r = api.post(
            "/api/v1/activities",
            json={
                "type": "TASK",
                "subject": f"{subject} {tag}",
                "startDate": start.isoformat(),
                "customerId": customer["id"],
            },
        )
        assert r.status_code == 201, r.text
    campaign = api.post(
        "/api/v1/campaigns", json={"name": f"Spring {tag}", "type": "EMAIL", "budget": "900.00"}
    ).json()
    assert (
        api.post(
            f"/api/v1/campaigns/{campaign['id']}/targets", json={"customerIds": [customer["id"]]}
        ).status_code
        < 300
    )

    person = Person(browser, crm)
    page = person.page
    person.sign_in(ADMIN_EMAIL)

    # Tickets: the list marks the URGENT ticket's first response as due within the hour.
    page.get_by_role("link", name="Tickets").click()
    page.get_by_label("Search").fill(tag)
    row = page.locator(f'tr[data-id="{ticket["id"]}"]')
    expect(row).to_contain_text("Due within the hour")
    person.check("13-tickets")
    row.get_by_role("link", name=ticket["ticketNumber"]).click()
    page.get_by_label("Message").fill("We are looking into it.")
    page.get_by_role("button", name="Add to the conversation").click()
    expect(page.locator("#conversation")).to_contain_text("We are looking into it.")
    expect(page.locator("#ticket-status")).to_have_text("OPEN")  # the first answer opened it
    page.get_by_label("New status").select_option("RESOLVED")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#flash")).to_contain_text("resolution")  # refused: a resolution is needed
    page.get_by_label("New status").select_option("RESOLVED")
    page.get_by_label("Resolution (to resolve)").fill("Password reset.")
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#ticket-status")).to_have_text("RESOLVED")
    person.check("14-ticket")

    # My agenda: yesterday's task is overdue, today's is today; ticking it off removes it.
    page.get_by_role("link", name="My agenda").click()
    expect(page.locator("#agenda-overdue")).to_contain_text(f"Overdue follow-up {tag}")
    today = page.locator("#agenda-dueToday")
    expect(today).to_contain_text(f"Call today {tag}")
    person.check("15-agenda")
    today.get_by_role("button", name=f"Done Call today {tag}").click()
    expect(page.locator("#flash")).to_contain_text("Marked done.")
    expect(page.locator("#agenda-dueToday")).not_to_contain_text(f"Call today {tag}")

    # Campaigns: the list, and the campaign's funnel with its one target.
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_role("link", name=f"Spring {tag}").click()
    expect(page.locator("#funnel-table")).to_contain_text("Targets")
    expect(page.locator("#funnel-table tbody tr").first.locator("td").first).to_have_text("1")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#campaign-status")).to_have_text("ACTIVE")
    person.check("16-campaign")

    # A new campaign and a new ticket through their forms.
    page.get_by_role("link", name="Campaigns").click()
    page.locator("summary", has_text="New campaign").click()
    page.get_by_label("Name", exact=True).fill(f"Autumn {tag}")
    page.get_by_label("Budget").fill("50.00")
    person.check("18-campaign-new")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.locator("h1")).to_contain_text(f"Autumn {tag}")
    page.goto(f"/app/customers/{customer['id']}")
    page.locator("summary", has_text="New ticket").click()
    tickets = page.get_by_role("region", name="Tickets")
    tickets.get_by_label("Subject").fill(f"Invoice question {tag}")
    tickets.get_by_label("Description").fill("Which VAT rate?")
    page.get_by_role("button", name="Open ticket").click()
    expect(page.locator("h1")).to_contain_text(f"Invoice question {tag}")
    page.goto(f"/app/campaigns/{campaign['id']}")

    # The console's own words in Chinese, chosen with the switch (over the browser's English).
    page.get_by_label("Language").select_option("zh")
    page.get_by_role("button", name="Switch").click()
    expect(page.get_by_role("link", name="营销活动")).to_be_visible()
    expect(page.locator("#funnel-table")).to_contain_text("目标客户")
    page.get_by_role("link", name="工单").click()
    expect(page.get_by_role("heading", name="工单")).to_be_visible()
    expect(page.get_by_role("button", name="退出")).to_be_visible()
    person.check("17-tickets-zh")
    person.context.close()


def test_the_language_choice_follows_the_user_to_a_fresh_browser(crm, browser, api):
    """The switch saves the signed-in user's preference on their user record: another browser (a
    fresh context, no cookies, still sending Accept-Language: en) signs in to the same language."""
    from playwright.sync_api import expect

    email = f"polyglot-{uuid.uuid4().hex[:8]}@example.com"
    user = {"email": email, "fullName": "Poly Glot", "password": PASSWORD, "roles": ["sales_rep"]}
    assert api.post("/api/v1/users", json=user).status_code == 201
    first = Person(browser, crm)
    first.sign_in(email)
    expect(first.page.get_by_role("heading", name="CRM Dashboard")).to_be_visible()
    first.page.get_by_label("Language").select_option("zh")
    first.page.get_by_role("button", name="Switch").click()
    expect(first.page.get_by_role("heading", name="CRM仪表盘")).to_be_visible()
    first.context.close()

    second = Person(browser, crm)
    page = second.page
    second.sign_in(email)  # the sign-in page is the browser's English: nobody is signed in yet
    expect(page.get_by_role("heading", name="CRM仪表盘")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "zh"
    expect(page.get_by_role("link", name="客户", exact=True)).to_be_visible()
    second.check("19-dashboard-preference-zh")
    # And back: the choice is the user's in this browser too.
    page.get_by_label("语言").select_option("en")
    page.get_by_role("button", name="切换").click()
    expect(page.get_by_role("heading", name="CRM Dashboard")).to_be_visible()
    second.context.close()
