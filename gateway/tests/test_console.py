"""The console at /app over HTTP (the browser tests in tests/browser drive it as a person would):
sessions, CSRF, security headers, permissions, errors as messages."""

import re

import pytest
from crm_common.testing.plugin import eventually, running
from crm_gateway.embedded import create_embedded_app

from .conftest import ADMIN, PASSWORD, login
from .test_dashboard import SERVICES, settings_for


@pytest.fixture
async def gw(tmp_path):
    async with running(create_embedded_app(settings_for(tmp_path), only=SERVICES)) as client:
        yield client


def csrf_in(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


async def sign_in(gw, email=ADMIN, password=PASSWORD):
    form = await gw.get("/app/login")
    return await gw.post(
        "/app/login",
        data={"csrf": csrf_in(form.text), "username": email, "password": password, "next": "/app"},
    )


async def test_pages_need_a_session_and_send_the_security_headers(gw):
    r = await gw.get("/app/customers?q=x")
    assert r.status_code == 303
    assert r.headers["location"] == "/app/login?next=/app/customers%3Fq%3Dx"
    page = await gw.get("/app/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    # Every script and stylesheet is one of ours.
    for url in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert url.startswith("/"), url
    assert "<script>" not in page.text and "style=" not in page.text


async def test_sign_in_sets_an_httponly_lax_cookie_and_a_wrong_password_shows_the_problem(gw):
    wrong = await sign_in(gw, password="not it")
    assert wrong.status_code == 400
    assert "The email or password is wrong" in wrong.text
    assert "Traceback" not in wrong.text
    ok = await sign_in(gw)
    assert ok.status_code == 303 and ok.headers["location"] == "/app"
    session = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("crm_console="))
    assert "HttpOnly" in session and "SameSite=lax" in session and "Path=/app" in session
    assert (await gw.get("/app")).status_code == 200


async def test_a_form_without_the_csrf_token_is_refused(gw):
    await sign_in(gw)
    r = await gw.post("/app/customers", data={"firstName": "Eve", "email": "eve@example.com"})
    assert r.status_code == 403
    assert "CSRF" in r.text
    wrong = await gw.post("/app/customers", data={"csrf": "guess", "email": "eve@example.com"})
    assert wrong.status_code == 403
    listed = await gw.get("/api/v1/customers", params={"q": "eve"}, headers=await login(gw))
    assert listed.json()["total"] == 0


async def test_the_list_is_rendered_from_the_view_definition_in_english_and_chinese(gw):
    await sign_in(gw)
    english = await gw.get("/app/customers")
    assert "Customer number" in english.text and "Assigned to" in english.text
    assert "New customer" in english.text  # the definition's `create` action
    assert "Import customers" in english.text  # the definition's `import` action
    assert '<a href="/app/customers" aria-current="page">Customers</a>' in english.text
    chinese = await gw.get("/app/customers", headers={"Accept-Language": "zh"})
    assert "客户编号" in chinese.text and "新增客户" in chinese.text


async def test_a_refused_create_shows_the_problems_detail(gw):
    page = await sign_in(gw)
    form = await gw.get("/app/customers/new")
    r = await gw.post("/app/customers", data={"csrf": csrf_in(form.text), "email": "not-an-email"})
    assert r.status_code == 422
    assert 'class="message error"' in r.text
    assert "email" in r.text.lower()
    assert page.status_code == 303


async def test_a_read_only_user_is_offered_no_writes(gw):
    admin = await login(gw)
    r = await gw.post(
        "/api/v1/users",
        json={
            "email": "reader@example.com",
            "fullName": "Reader",
            "password": PASSWORD,
            "roles": ["read_only"],
        },
        headers=admin,
    )
    assert r.status_code == 201, r.text
    customer = await gw.post(
        "/api/v1/customers", json={"email": "c@example.com", "lastName": "C"}, headers=admin
    )
    body = {"title": "Seen not touched", "customerId": customer.json()["id"], "amount": "10.00"}

    async def create():  # once pipeline-svc has heard of the customer (an event, a few ms later)
        r = await gw.post("/api/v1/opportunities", json=body, headers=admin)
        return r if r.status_code == 201 else None

    opportunity = await eventually(create)
    assert opportunity is not None, "pipeline-svc never accepted the customer"
    await sign_in(gw, "reader@example.com")
    customers = await gw.get("/app/customers")
    assert customers.status_code == 200
    assert "New customer" not in customers.text and "Import customers" not in customers.text
    assert "/edit" not in customers.text and "/convert" not in customers.text
    page = await gw.get(f"/app/customers/{customer.json()['id']}")
    assert page.status_code == 200 and "C" in page.text
    assert "/assign" not in page.text and "/merge" not in page.text and "/edit" not in page.text
    board = await gw.get("/app/pipeline")
    assert board.status_code == 200
    assert "Seen not touched" in board.text  # the reader sees the card...
    assert 'data-drag="off"' in board.text  # ...but cannot drag it
    assert "/win" not in board.text and "/lose" not in board.text


def test_console_routes_are_not_in_the_api_document(tmp_path):
    app = create_embedded_app(settings_for(tmp_path), only=())
    assert not [p for p in app.openapi()["paths"] if p.startswith("/app")]


async def test_the_language_switch_is_kept_on_the_user_not_the_browser(gw):
    """Signed in, the switch saves the user's preference (`locale` in /me): no cookie, and a new
    sign-in from another browser is in that language whatever it sends; another user is unaffected."""
    await sign_in(gw)
    page = await gw.get("/app")
    switched = await gw.post(
        "/app/language", data={"csrf": csrf_in(page.text), "language": "zh", "next": "/app"}
    )
    assert switched.status_code == 303
    assert not [c for c in switched.headers.get_list("set-cookie") if c.startswith("crm_console_lang=")]
    assert (await gw.get("/api/v1/me", headers=await login(gw))).json()["locale"] == "zh"
    gw.cookies.clear()  # another browser: nothing of the first one's
    await sign_in(gw)
    assert '<html lang="zh">' in (await gw.get("/app", headers={"Accept-Language": "en"})).text
    rep = {"email": "rep@example.com", "fullName": "Rep", "password": PASSWORD, "roles": ["sales_rep"]}
    assert (await gw.post("/api/v1/users", json=rep, headers=await login(gw))).status_code == 201
    gw.cookies.clear()
    await sign_in(gw, "rep@example.com")
    assert '<html lang="en">' in (await gw.get("/app", headers={"Accept-Language": "en"})).text
    assert '<html lang="zh">' in (await gw.get("/app", headers={"Accept-Language": "zh"})).text


async def test_before_sign_in_the_switch_is_a_cookie_for_the_sign_in_page_only(gw):
    form = await gw.get("/app/login", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in form.text
    chosen = await gw.post(
        "/app/language", data={"csrf": csrf_in(form.text), "language": "zh", "next": "/app/login"}
    )
    assert chosen.status_code == 303
    assert [c for c in chosen.headers.get_list("set-cookie") if c.startswith("crm_console_lang=zh")]
    assert '<html lang="zh">' in (await gw.get("/app/login", headers={"Accept-Language": "en"})).text
    # Signed in, the user's preference (none yet) and then Accept-Language decide, not the cookie.
    await sign_in(gw)
    assert '<html lang="en">' in (await gw.get("/app", headers={"Accept-Language": "en"})).text


async def test_the_language_switch_wins_over_the_browsers_language_for_every_word(gw):
    await sign_in(gw)
    page = await gw.get("/app/customers")
    assert "Export CSV" in page.text and "Sign out" in page.text
    switched = await gw.post(
        "/app/language", data={"csrf": csrf_in(page.text), "language": "zh", "next": "/app/customers"}
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/app/customers"
    chinese = await gw.get("/app/customers", headers={"Accept-Language": "en"})
    assert '<html lang="zh">' in chinese.text
    assert "客户列表" in chinese.text  # the view's label, from the views API
    assert "导出 CSV" in chinese.text and "退出" in chinese.text  # the console's own words
    away = await gw.post(
        "/app/language", data={"csrf": csrf_in(page.text), "language": "en", "next": "https://evil.example"}
    )
    assert away.headers["location"] == "/app"  # never a redirect off the console
    assert "Export CSV" in (await gw.get("/app/customers", headers={"Accept-Language": "zh"})).text


async def test_an_expired_access_token_is_refreshed_from_the_sign_ins_refresh_token(gw):
    signed_in = await sign_in(gw)
    cookies = {c.split("=", 1)[0]: c for c in signed_in.headers.get_list("set-cookie")}
    refresh_cookie = cookies["crm_console_refresh"]
    assert "HttpOnly" in refresh_cookie and "Path=/app" in refresh_cookie and "SameSite=lax" in refresh_cookie
    old_refresh = gw.cookies.get("crm_console_refresh")
    # The browser dropped the access token at its expiry: the next page refreshes the sign-in.
    gw.cookies.delete("crm_console", path="/app")
    page = await gw.get("/app/customers")
    assert page.status_code == 200
    renewed = {c.split("=", 1)[0] for c in page.headers.get_list("set-cookie")}
    assert {"crm_console", "crm_console_refresh"} <= renewed
    assert gw.cookies.get("crm_console_refresh") != old_refresh  # it rotated
    # A second request still carrying the old refresh token (sent at the same moment) gets the
    # same new pair rather than revoking the sign-in as a reuse.
    again = await gw.get(
        "/app/customers", headers={"cookie": f"crm_console_refresh={old_refresh}; crm_console_csrf=x"}
    )
    assert again.status_code == 200
    assert (await gw.get("/app")).status_code == 200  # the new pair still works

    # Signing out ends the sign-in: its refresh token is refused afterwards.
    form = await gw.get("/app")
    last_refresh = gw.cookies.get("crm_console_refresh")
    out = await gw.post("/app/logout", data={"csrf": csrf_in(form.text)})
    assert out.status_code == 303
    gone = await gw.get("/app/customers", headers={"cookie": f"crm_console_refresh={last_refresh}"})
    assert gone.status_code == 303 and "/app/login" in gone.headers["location"]
