"""Security headers on every response the gateway sends (its own, the services', its problems).

Every response: `X-Content-Type-Options: nosniff` (a browser never guesses a JSON body is HTML),
`Referrer-Policy: no-referrer`. API responses also get a CSP that loads nothing and may not be
framed. HTML pages (the API docs) get a CSP that lets Swagger UI load from its CDN and run its
inline bootstrap script, and `X-Frame-Options: DENY` against clickjacking.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

COMMON = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# fastapi.openapi.docs.get_swagger_ui_html: assets from cdn.jsdelivr.net, an inline init script,
# the favicon from fastapi.tiangolo.com; the document itself from this origin.
HTML_CSP = (
    b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    b"connect-src 'self'; font-src https://cdn.jsdelivr.net; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SecurityHeaders:
    # Ordered before admission control (crm_common.app): refusals carry the headers too.
    every_response = True

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                extra = list(COMMON)
                if content_type.startswith(b"text/html"):
                    extra += [(b"content-security-policy", HTML_CSP), (b"x-frame-options", b"DENY")]
                else:
                    extra.append((b"content-security-policy", API_CSP))
                headers += [(k, v) for k, v in extra if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
