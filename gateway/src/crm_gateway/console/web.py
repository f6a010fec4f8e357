"""What every console page shares: templates, the route class that turns a missing session into the
sign-in page and any failure into a message (never a stack trace), and the security headers."""

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from crm_common.observability import current_request_id
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from crm_gateway.console import render, words
from crm_gateway.console.session import (
    COOKIE_PATH,
    CSRF_COOKIE,
    SEEN_COOKIE,
    Console,
    CsrfRefused,
    SignInRequired,
    anonymous,
    language_of,
    login_url,
    set_cookie,
    set_session,
)

log = logging.getLogger("crm.console")

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.filters["fmt"] = render.fmt
templates.env.filters["money"] = render.money
templates.env.filters["local"] = render.local_time
# The page's language, the one the views API is asked for, so `lang` matches what is shown.
templates.env.globals["language"] = language_of

# Only our own assets: no inline script or style, no other origin, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


def page(ctx: Console, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    # `t`: the console's own words in the page's language (`{{ t("Save") }}`, `{{ t("{n} rows", n=3) }}`),
    # a plain function bound to the language once per page (a kanban calls it thousands of times).
    t = partial(words.translate, language=ctx.language)
    return templates.TemplateResponse(
        ctx.request, template, {"ctx": ctx, "csrf": ctx.csrf, "t": t, **context}, status_code=status_code
    )


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    """A redirect a browser follows, also from an htmx request (which would swap a 303 in place)."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[..., Any]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired as exc:
                response = redirect(request, login_url(request))
                if exc.message:
                    set_cookie(response, "crm_console_flash", exc.message, request, max_age=60)
            except CsrfRefused:
                response = page(
                    anonymous(request),
                    "error.html",
                    status_code=403,
                    message=words.translate(
                        "This form has expired (CSRF check failed). Reload the page and try again.",
                        language_of(request),
                    ),
                )
            except Exception:
                # Logged with its trace for the operator; the user sees a message and the request id.
                log.exception("console page %s failed", request.url.path)
                response = page(
                    anonymous(request),
                    "error.html",
                    status_code=500,
                    message=words.translate(
                        "Something went wrong. Request id: {id}.",
                        language_of(request),
                        id=current_request_id() or "-",
                    ),
                )
            new_csrf = request.state.__dict__.get("new_csrf")
            already = any(v.startswith(CSRF_COOKIE + "=") for v in response.headers.getlist("set-cookie"))
            if new_csrf and not already:
                set_cookie(response, CSRF_COOKIE, new_csrf, request)
            new_session = getattr(request.state, "new_session", None)
            if new_session:  # refreshed during this request: the browser keeps the new pair
                set_session(response, request, new_session)
            seen = getattr(request.state, "seen", None)
            if seen:
                set_cookie(response, SEEN_COOKIE, seen, request, max_age=60)
            elif SEEN_COOKIE in request.cookies and request.method == "GET":
                response.delete_cookie(SEEN_COOKIE, path=COOKIE_PATH)  # read once, by the next page
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return guarded
