"""Sign-in and sign-out."""

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.console.session import (
    COOKIE_PATH,
    CSRF_COOKIE,
    LANGUAGE_COOKIE,
    REFRESH_COOKIE,
    SESSION_COOKIE,
    Console,
    SignInRequired,
    anonymous,
    check_csrf,
    console,
    set_cookie,
    set_session,
)
from crm_gateway.console.web import ConsoleRoute, page, redirect
from crm_gateway.views.labels import LANGUAGES

router = APIRouter(prefix=COOKIE_PATH, route_class=ConsoleRoute)
FLASH = "crm_console_flash"


def _safe_next(target: str | None) -> str:
    # Only a path inside the console: never an open redirect to another site.
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//"):
        return target
    return COOKIE_PATH


@router.get("/login")
async def login_form(
    request: Request, ctx: Annotated[Console, Depends(anonymous)], next: str | None = None
) -> Response:
    response = page(ctx, "login.html", next=_safe_next(next), message=request.cookies.get(FLASH))
    response.delete_cookie(FLASH, path=COOKIE_PATH)
    return response


@router.post("/login")
async def login(request: Request, ctx: Annotated[Console, Depends(anonymous)]) -> Response:
    form = await check_csrf(request)
    target = _safe_next(str(form.get("next") or ""))
    r = await ctx.post(
        "/api/v1/auth/token",
        data={"username": str(form.get("username", "")), "password": str(form.get("password", ""))},
    )
    if not r.ok:
        return page(
            ctx, "login.html", status_code=400, next=target, message=r.detail, email=form.get("username")
        )
    response = redirect(request, target)
    set_session(response, request, r.body)
    # A new CSRF token for the new session, so one seen before sign-in is worth nothing after.
    set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32), request)
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Annotated[Console, Depends(anonymous)]) -> Response:
    await check_csrf(request)
    refresh = request.cookies.get(REFRESH_COOKIE)
    if refresh:  # ends the sign-in, so the refresh token is worth nothing after
        await ctx.post("/api/v1/auth/logout", json={"refreshToken": refresh})
    response = redirect(request, f"{COOKIE_PATH}/login")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    response.delete_cookie(REFRESH_COOKIE, path=COOKIE_PATH)
    set_cookie(response, CSRF_COOKIE, secrets.token_urlsafe(32), request)
    return response


@router.post("/language")
async def choose_language(request: Request) -> Response:
    """The language switch. Signed in: saved as the user's preference (PATCH /api/v1/me), so it
    follows them to any browser; on the sign-in page, before anyone is signed in: a cookie (a year)."""
    form = await check_csrf(request)
    response = redirect(request, _safe_next(str(form.get("next") or "")))
    language = str(form.get("language", ""))
    if language not in LANGUAGES:
        return response
    try:
        ctx = await console(request)
    except SignInRequired:
        set_cookie(response, LANGUAGE_COOKIE, language, request, max_age=365 * 24 * 3600)
        return response
    r = await ctx.patch("/api/v1/me", json={"locale": language})
    if not r.ok:
        return page(ctx, "error.html", status_code=r.status, message=r.detail)
    ctx.memo.forget(ctx.user_key("me"))  # the next page reads the new choice
    return response
