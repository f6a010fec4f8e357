"""Asking customer-svc about a customer this context has not heard of yet, so a customer created a
moment ago is never refused because its `customer.created` is still on its way.

customer-svc answers `GET /internal/v1/customer-refs/{id}` (not routed by the gateway): the
customer's reference data and version, or 404. The caller is a service with the platform's service
credential (`CRM_SERVICE_TOKEN`), or, without one, the end user whose request needs the answer (their
access token is passed on). In the embedded default the call is an in-process ASGI call to the
customer app; in distributed mode it is HTTP to `CRM_CUSTOMER_URL`.

A flood of unknown ids must not become a flood on customer-svc: answers "no such customer" are
remembered for `NEGATIVE_TTL` seconds, concurrent lookups of one id share one call, and at most
`CONCURRENCY` calls per process are in flight (the rest wait, within the timeout).
"""

import asyncio
import hmac
import logging
import time
import uuid
from contextvars import ContextVar
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_common.contracts.customer import CustomerOwner
from crm_common.errors import ProblemError
from crm_common.settings import ServiceSettings

log = logging.getLogger("crm.customer_lookup")

PATH = "/internal/v1/customer-refs/{customer_id}"
TIMEOUT = 5.0
CONCURRENCY = 8
NEGATIVE_TTL = 5.0
NEGATIVE_MAX = 10_000


class CustomerRefData(BaseModel):
    """What customer-svc tells another context about one customer."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    id: uuid.UUID
    customer_number: str
    full_name: str
    status: str
    priority: str | None = None
    source_campaign_id: uuid.UUID | None = None
    merged_into_id: uuid.UUID | None = None
    version: int
    # Assignee and team (record scopes); null from a customer-svc older than the field.
    owner: CustomerOwner | None = None


class CustomerServiceUnavailable(Exception):
    """customer-svc could not be asked (not reachable, too slow, or it failed)."""


def unavailable() -> ProblemError:
    return ProblemError(
        503,
        "CUSTOMER_SERVICE_UNAVAILABLE",
        "The customer service could not be asked whether this customer exists; nothing was written. "
        "Try again shortly.",
        headers={"Retry-After": "1"},
    )


class CustomerLookup:
    def __init__(self, client: httpx.AsyncClient, *, token: str | None = None, timeout: float = TIMEOUT):
        self._client = client
        self._token = token
        self._timeout = timeout
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._inflight: dict[uuid.UUID, asyncio.Future[CustomerRefData | None]] = {}
        self._missing: dict[uuid.UUID, float] = {}
        self.calls = 0  # calls made to customer-svc (tests and metrics read it)

    @classmethod
    def local(cls, app: FastAPI, *, token: str | None, timeout: float = TIMEOUT) -> "CustomerLookup":
        transport = httpx.ASGITransport(app=app)
        client = httpx.AsyncClient(transport=transport, base_url="http://customer")
        return cls(client, token=token, timeout=timeout)

    @classmethod
    def remote(cls, url: str, *, token: str | None, timeout: float = TIMEOUT) -> "CustomerLookup":
        return cls(httpx.AsyncClient(base_url=url), token=token, timeout=timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(
        self, customer_id: uuid.UUID, *, authorization: str | None = None
    ) -> CustomerRefData | None:
        """The customer, or None when customer-svc says there is none. Raises
        CustomerServiceUnavailable when it cannot be asked."""
        expires = self._missing.get(customer_id)
        if expires is not None:
            if expires > time.monotonic():
                return None
            del self._missing[customer_id]
        call = self._inflight.get(customer_id)
        if call is None:
            call = asyncio.ensure_future(self._ask(customer_id, authorization))
            self._inflight[customer_id] = call
            call.add_done_callback(lambda _: self._inflight.pop(customer_id, None))
        # Shielded: one caller giving up (its request cancelled) does not cancel the others' call.
        return await asyncio.shield(call)

    async def _ask(self, customer_id: uuid.UUID, authorization: str | None) -> CustomerRefData | None:
        headers = {}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        elif authorization:
            headers["authorization"] = authorization
        try:
            async with asyncio.timeout(self._timeout):
                async with self._slots:
                    self.calls += 1
                    response = await self._client.get(PATH.format(customer_id=customer_id), headers=headers)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            log.warning("customer lookup of %s failed: %r", customer_id, exc)
            raise CustomerServiceUnavailable(str(exc) or type(exc).__name__) from exc
        if response.status_code == 404:
            self._remember_missing(customer_id)
            return None
        if response.status_code != 200:
            log.warning("customer lookup of %s: customer-svc answered %s", customer_id, response.status_code)
            raise CustomerServiceUnavailable(f"customer-svc answered {response.status_code}")
        return CustomerRefData.model_validate(response.json())

    def _remember_missing(self, customer_id: uuid.UUID) -> None:
        now = time.monotonic()
        if len(self._missing) >= NEGATIVE_MAX:
            self._missing = {k: v for k, v in self._missing.items() if v > now}
            if len(self._missing) >= NEGATIVE_MAX:
                self._missing.clear()
        self._missing[customer_id] = now + NEGATIVE_TTL


# --- the lookup of the app serving the current request ----------------------------------------

_current: ContextVar[tuple[CustomerLookup | None, str | None]] = ContextVar(
    "crm_customer_lookup", default=(None, None)
)


def current() -> tuple[CustomerLookup | None, str | None]:
    """The current request's service lookup (None: no customer-svc configured) and caller token."""
    return _current.get()


class _RequestScope:
    """Makes the app's lookup and the caller's Authorization header reachable from the service code
    of this request (plain functions that take only a session)."""

    def __init__(self, app: ASGIApp, owner: FastAPI):
        self.app = app
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        token = _current.set((getattr(self.owner.state, "customer_lookup", None), authorization))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """For services that reference customers: a lookup to `settings.customer_url` when set (the
    embedded default replaces it with an in-process one)."""
    app.state.customer_lookup = (
        CustomerLookup.remote(
            settings.customer_url,
            token=settings.service_token,
            timeout=settings.customer_lookup_timeout_seconds,
        )
        if settings.customer_url
        else None
    )
    app.add_middleware(_RequestScope, owner=app)


# --- customer-svc's side ---------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False)


async def internal_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    """The service credential, or any valid access token (a user's request being checked)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "UNAUTHORIZED", "A service credential or an access token is required.")
    expected = request.app.state.settings.service_token
    if expected and hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        return
    request.app.state.token_verifier.verify(credentials.credentials)


def ref_data(customer: Any) -> CustomerRefData:
    return CustomerRefData(
        id=customer.id,
        customer_number=customer.customer_number,
        full_name=customer.full_name,
        status=customer.status,
        priority=customer.priority,
        source_campaign_id=customer.source_campaign_id,
        merged_into_id=customer.merged_into_id,
        version=customer.version,
        owner=CustomerOwner(assigned_to_id=customer.assigned_to_id, team_id=customer.team_id),
    )
