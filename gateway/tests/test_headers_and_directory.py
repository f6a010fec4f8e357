"""Security headers on every response, and the user directory: in full for admins and the user
themself, names only for everyone else."""

from .conftest import PASSWORD, login


async def test_every_response_has_the_security_headers_and_html_pages_more(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    for response in (
        await gw.get("/api/v1/me", headers=admin),
        await gw.get("/api/v1/me"),  # a problem from the route
        await gw.get("/api/v1/users", headers={"Authorization": "Bearer crm_nope"}),  # from the door
        await gw.get("/openapi.json"),
        await gw.get("/healthz"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    docs = await gw.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert docs.headers["x-frame-options"] == "DENY"
    csp = docs.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net" in csp and "default-src 'none'" in csp


async def test_the_directory_shows_names_to_others_and_everything_to_admins(identity_gateway):
    gw = identity_gateway
    admin = await login(gw)
    ids = {}
    for email, role in (("rep@example.com", "sales_rep"), ("sue@example.com", "support_agent")):
        r = await gw.post(
            "/api/v1/users",
            json={"email": email, "fullName": email[:3].title(), "password": PASSWORD, "roles": [role]},
            headers=admin,
        )
        ids[email] = r.json()["id"]
    rep = await login(gw, "rep@example.com")

    listed = (await gw.get("/api/v1/users", headers=rep)).json()["items"]
    by_name = {u["fullName"]: u for u in listed}
    assert by_name["Sue"]["email"] is None and by_name["Sue"]["roles"] is None
    assert by_name["Sue"]["permissions"] is None and by_name["Sue"]["isActive"] is True
    assert by_name["Rep"]["email"] == "rep@example.com"  # themself: in full
    sue = (await gw.get(f"/api/v1/users/{ids['sue@example.com']}", headers=rep)).json()
    assert sue["fullName"] == "Sue" and sue["email"] is None and sue["roles"] is None
    # No probing emails or roles through the filters either.
    assert (await gw.get("/api/v1/users?q=sue@example", headers=rep)).json()["total"] == 0
    r = await gw.get("/api/v1/users?role=admin", headers=rep)
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"

    full = (await gw.get(f"/api/v1/users/{ids['sue@example.com']}", headers=admin)).json()
    assert full["email"] == "sue@example.com" and full["roles"] == ["support_agent"]
    assert (await gw.get("/api/v1/users?q=sue@example", headers=admin)).json()["total"] == 1
