"""One small client for the gateway's own calls to the services (dashboard, views, actions), the
same in both modes: an in-process ASGI call to the local service app (embedded default) or an HTTP
call through the distributed upstream's aiohttp session. The caller's token and the request id go
along, so each service checks permissions itself and its logs carry the same id."""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from crm_common import consistency, tracing
from crm_common.observability import current_request_id
from fastapi import FastAPI

from crm_gateway.proxy import HttpUpstream


class ServiceUnavailable(Exception):
    """The service is not configured, not reachable, too slow, or answered 5xx."""


@dataclass
class ServiceResponse:
    status: int
    body: Any


class ServiceClient:
    def __init__(self, local: Mapping[str, FastAPI], remote: Mapping[str, HttpUpstream]) -> None:
        self._local = {
            name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            for name, app in local.items()
        }
        self._remote = dict(remote)

    async def close(self) -> None:
        for client in self._local.values():
            await client.aclose()

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        authorization: str | None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> ServiceResponse:
        out_headers = {**(headers or {})}
        if authorization:
            out_headers["authorization"] = authorization
        request_id = current_request_id()
        if request_id:
            out_headers["x-request-id"] = request_id
        out_headers.update(tracing.outgoing_headers())
        out_headers.update(consistency.outgoing_headers())
        if service in self._local:
            r = await self._local[service].request(
                method, path, params=params, json=json_body, headers=out_headers
            )
            status, body = r.status_code, (r.json() if r.content else None)
            consistency.note_token(r.headers.get(consistency.TOKEN_HEADER))
        elif service in self._remote:
            upstream = self._remote[service]
            session = upstream._session
            if session is None:
                raise ServiceUnavailable(service)
            try:
                async with session.request(
                    method,
                    upstream.base_url + path,
                    params=_aiohttp_params(params),
                    json=json_body,
                    headers=out_headers,
                    timeout=upstream.timeout,
                ) as resp:
                    status = resp.status
                    consistency.note_token(resp.headers.get(consistency.TOKEN_HEADER))
                    raw = await resp.read()
                    body = json.loads(raw) if raw else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ServiceUnavailable(f"{service}: {exc}") from exc
        else:
            raise ServiceUnavailable(f"{service} is not configured")
        if status >= 500:
            raise ServiceUnavailable(f"{service} answered {status}")
        return ServiceResponse(status, body)

    async def get(self, service: str, path: str, **kwargs: Any) -> ServiceResponse:
        return await self.request(service, "GET", path, **kwargs)


def _aiohttp_params(params: Any) -> list[tuple[str, str]] | None:
    if params is None:
        return None
    items = params.items() if isinstance(params, Mapping) else params
    return [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in items]
