"""/docs and /redoc load nothing from another host: every script, stylesheet and icon they reference
is served by the gateway itself."""

import re

import pytest

URL_ATTR = re.compile(
    r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']"""
)


def referenced(html: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in URL_ATTR.finditer(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_reference_pages_use_only_local_assets(identity_gateway, page):
    r = await identity_gateway.get(page)
    assert r.status_code == 200
    html = r.text
    urls = referenced(html)
    assert any(u.endswith(".js") for u in urls), urls  # the page does load its viewer
    for url in urls:
        assert url.startswith("/"), f"{page} references {url}, which is not on this server"
    # Nothing else in the page (an inline script, a font import) names another host either.
    assert "://" not in html, re.findall(r"\S*://\S*", html)
    for url in urls:
        asset = await identity_gateway.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
    assert "/openapi.json" in urls


async def test_vendored_assets_have_their_content_types(identity_gateway):
    js = await identity_gateway.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    css = await identity_gateway.get("/static/vendor/swagger-ui/swagger-ui.css")
    assert "javascript" in js.headers["content-type"]
    assert css.headers["content-type"].startswith("text/css")
    assert (await identity_gateway.get("/static/vendor/nothing-here.js")).status_code == 404
