"""The console's session and its calls to the API.

The session is the user's access token in an HttpOnly, SameSite=Lax cookie scoped to /app: the
console never holds more than the user does, and every page calls the public API through the
gateway's own app (in process, through the front door and the routing, in both run modes) with that
token, so each service checks the user's permissions and record scopes itself.

CSRF: a random token in its own HttpOnly cookie, repeated by every form (`csrf` field) and every
htmx/fetch request (`X-CSRF-Token` header, added by console.js); a write whose copy does not match is
refused. It is renewed at sign-in and sign-out.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request, Response
from starlette.datastructures import FormData

from crm_gateway.console import memo, words
from crm_gateway.views.labels import LANGUAGES, preferred_language

SESSION_COOKIE = "crm_console"
# The sign-in's refresh token: a new access token when the old one expires, so a person working on
# is not sent back to the sign-in page every 15 minutes. It rotates at each use (docs/api-guide.md).
REFRESH_COOKIE = "crm_console_refresh"
REFRESH_COOKIE_SECONDS = 14 * 24 * 3600  # the API's refresh lifetime; the API decides validity
CSRF_COOKIE = "crm_console_csrf"
# The language switch's choice on the sign-in page, before anyone is signed in; a signed-in user's
# choice is kept on their user record (`locale`, PATCH /api/v1/me) and follows them to any browser.
LANGUAGE_COOKIE = "crm_console_lang"
# The consistency token of the user's last write, kept for the page the write redirects to, so that
# page reads its own write in every context (e.g. the opportunity a convert made, the timeline note).
SEEN_COOKIE = "crm_console_seen"
COOKIE_PATH = "/app"
CONSISTENCY_HEADER = "crm-consistency-token"


class SignInRequired(Exception):
    """No session, or the access token has expired: back to the sign-in page."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message


class CsrfRefused(Exception):
    pass


@dataclass
class ApiResult:
    status: int
    body: Any
    etag: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def detail(self) -> str:
        """What to show the user when the API refused: the problem's `detail` (and field errors)."""
        body = self.body if isinstance(self.body, dict) else {}
        detail = body.get("detail") or body.get("title") or f"The request failed ({self.status})."
        errors = body.get("errors") or []
        fields = [f"{e.get('field') or e.get('loc')}: {e.get('message') or e.get('msg')}" for e in errors[:5]]
        return detail + (" " + "; ".join(fields) if fields else "")


def gateway_client(app: FastAPI) -> httpx.AsyncClient:
    """The console's way into the API: the gateway app itself, called in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.internal")


@dataclass
class Console:
    """One console request: who is signed in and a way to call the API as them."""

    request: Request
    token: str | None
    csrf: str
    me: dict[str, Any] = field(default_factory=dict)
    # The consistency token of the write this page follows (SEEN_COOKIE), sent on its reads.
    after: str | None = None

    @property
    def language(self) -> str:
        """Signed in: the user's stored choice (`locale` in /me), else the browser's Accept-Language;
        before sign-in: see language_of."""
        if self.token:
            return self.me.get("locale") or preferred_language(self.request.headers.get("accept-language"))
        return language_of(self.request)

    def translate(self, text: str, **values: Any) -> str:
        return words.translate(text, self.language, **values)

    @property
    def permissions(self) -> set[str]:
        return set(self.me.get("permissions", []))

    def can(self, permission: str) -> bool:
        return permission in self.permissions or "admin" in self.permissions

    async def call(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> ApiResult:
        client: httpx.AsyncClient = self.request.app.state.console_client
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        # The view labels follow the console's language choice, not only the browser's header.
        headers["accept-language"] = self.language
        if self.after and method == "GET":
            headers[CONSISTENCY_HEADER] = self.after
        r = await client.request(method, path, headers=headers, **kwargs)
        body = r.json() if r.content and "json" in r.headers.get("content-type", "") else None
        if r.status_code == 401 and self.token:
            # The access token ran out: refresh the sign-in and ask again (a 401 changed nothing; a
            # streamed body cannot be sent twice, so that one sends the user to sign in).
            replayable = isinstance(kwargs.get("content"), (bytes, str, type(None)))
            if retry and replayable and (pair := await refreshed(self.request)):
                self.token = pair["access_token"]
                return await self.call(method, path, retry=False, headers=headers, **kwargs)
            raise SignInRequired(self.translate("Your session has expired. Please sign in again."))
        if r.is_success and method != "GET" and r.headers.get(CONSISTENCY_HEADER):
            # Read by this request's later calls, and kept for the page this write leads to
            # (web.ConsoleRoute sets the cookie).
            self.after = self.request.state.seen = r.headers[CONSISTENCY_HEADER]
        return ApiResult(r.status_code, body, r.headers.get("etag"))

    async def get(self, path: str, **kwargs: Any) -> ApiResult:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ApiResult:
        return await self.call("POST", path, **kwargs)

    async def stream(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An answer to read as it arrives (an export); the caller closes it."""
        client: httpx.AsyncClient = self.request.app.state.console_client
        headers = {"authorization": f"Bearer {self.token}", "accept-language": self.language}
        request = client.build_request(method, path, headers=headers, **kwargs)
        response = await client.send(request, stream=True)
        if response.status_code == 401:
            await response.aclose()
            raise SignInRequired(self.translate("Your session has expired. Please sign in again."))
        return response

    async def patch(self, path: str, **kwargs: Any) -> ApiResult:
        return await self.call("PATCH", path, **kwargs)

    @property
    def memo(self) -> memo.Memo:
        memo_: memo.Memo = self.request.app.state.console_memo
        return memo_

    def user_key(self, what: str) -> tuple[str, str]:
        """A memo key for something about this user: the token's digest, never the token."""
        return (what, hashlib.sha256((self.token or "").encode()).hexdigest())

    async def time_zone(self) -> str:
        """The user's IANA time zone from their user record (`/me` does not carry it)."""

        async def fetch() -> tuple[bool, str]:
            r = await self.get(f"/api/v1/users/{self.me.get('id')}")
            return r.ok, ((r.body or {}).get("timeZone") if r.ok else None) or "UTC"

        zone: str = await self.memo.get(self.user_key("timeZone"), memo.USER_SECONDS, fetch)
        return zone

    async def view(self, view_id: str) -> ApiResult:
        """A view definition in the page's language (the same for every user)."""

        async def fetch() -> tuple[bool, ApiResult]:
            r = await self.get(f"/api/v1/views/{view_id}")
            return r.ok, r

        view: ApiResult = await self.memo.get(("view", view_id, self.language), memo.VIEW_SECONDS, fetch)
        return view

    async def directory(self) -> ApiResult:
        """The user directory (up to 200), for a filter's or an assignment's choices."""

        async def fetch() -> tuple[bool, ApiResult]:
            r = await self.get("/api/v1/users", params={"pageSize": 200})
            return r.ok, r

        users: ApiResult = await self.memo.get(self.user_key("users"), memo.USER_SECONDS, fetch)
        return users


def language_of(request: Request) -> str:
    """The page's language: a signed-in user's (Console.language, recorded by `console` for the pages
    drawn without their session, such as an error); before sign-in, the sign-in page's switch (kept
    in a cookie), else the browser's Accept-Language, else English."""
    known: str | None = getattr(request.state, "language", None)
    if known:
        return known
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return preferred_language(request.headers.get("accept-language"))


def csrf_of(request: Request) -> str:
    token: str = request.cookies.get(CSRF_COOKIE) or request.state.__dict__.setdefault(
        "new_csrf", secrets.token_urlsafe(32)
    )
    return token


async def check_csrf(request: Request) -> FormData:
    """The form, once its CSRF token (field or header) matches the cookie's."""
    form = await request.form()
    expected = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get("x-csrf-token") or str(form.get("csrf", ""))
    if not expected or not hmac.compare_digest(expected, sent):
        raise CsrfRefused
    return form


async def refreshed(request: Request) -> dict[str, Any] | None:
    """A new token pair for this sign-in from its refresh token (kept in `request.state.new_session`
    for the response's cookies), or None. A refresh token works once and two uses at once revoke the
    sign-in, so refreshes are one at a time and the new pair is remembered for a minute under the old
    token: a page's concurrent requests (htmx, assets) still carrying it get the same pair."""
    refresh = request.cookies.get(REFRESH_COOKIE)
    if not refresh:
        return None
    state = request.app.state
    key = ("refresh", hashlib.sha256(refresh.encode()).hexdigest())

    async def fetch() -> tuple[bool, dict[str, Any] | None]:
        r = await state.console_client.post(
            "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh}
        )
        return r.status_code == 200, r.json() if r.status_code == 200 else None

    async with state.console_refresh_lock:
        pair: dict[str, Any] | None = await state.console_memo.get(key, 60.0, fetch)
    if pair:
        request.state.new_session = pair
    return pair


async def console(request: Request) -> Console:
    """The signed-in user's console (dependency); SignInRequired when there is no valid session and
    the sign-in cannot be refreshed."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        pair = await refreshed(request)
        if not pair:
            raise SignInRequired
        token = pair["access_token"]
    ctx = Console(request, token, csrf_of(request), after=request.cookies.get(SEEN_COOKIE))

    async def fetch() -> tuple[bool, ApiResult]:
        r = await ctx.get("/api/v1/me")
        return r.ok, r

    me: ApiResult = await ctx.memo.get(ctx.user_key("me"), memo.USER_SECONDS, fetch)  # refreshes on a 401
    if not me.ok:
        raise SignInRequired(ctx.translate("Your session has expired. Please sign in again."))
    ctx.me = me.body
    request.state.language = ctx.language
    return ctx


def set_session(response: Response, request: Request, pair: dict[str, Any]) -> None:
    """The cookies of a signed-in session from a token answer (sign-in or refresh)."""
    set_cookie(response, SESSION_COOKIE, pair["access_token"], request, max_age=int(pair["expires_in"]))
    if pair.get("refresh_token"):
        set_cookie(response, REFRESH_COOKIE, pair["refresh_token"], request, max_age=REFRESH_COOKIE_SECONDS)


def anonymous(request: Request) -> Console:
    return Console(request, None, csrf_of(request))


def login_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{COOKIE_PATH}/login?next={quote(target)}"


def set_cookie(
    response: Response, name: str, value: str, request: Request, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
