"""`/api/v1/oauth-clients`: OAuth2 clients for the client credentials grant. Any signed-in user
manages their own; admins see and revoke everyone's."""

import uuid
from functools import partial
from typing import Annotated

from crm_common.app import SessionDep
from crm_common.auth import Principal, current_principal
from crm_common.db import after_commit
from crm_common.errors import problem_doc
from fastapi import APIRouter, Depends, Request, Response

from crm_gateway.identity import clients
from crm_gateway.identity.oauth_schemas import OAuthClientCreated, OAuthClientCreateRequest, OAuthClientRead

Caller = Annotated[Principal, Depends(current_principal)]

router = APIRouter(prefix="/api/v1/oauth-clients", tags=["oauth-clients"])


@router.post(
    "",
    operation_id="oauth_clients_create",
    summary="Create an OAuth client for yourself; the secret is in this response only",
    description="Its permissions must be among yours (422 `PERMISSION_NOT_HELD`), and at every token "
    "they are intersected with what you hold then. Get tokens with `POST /api/v1/auth/token` "
    "`grant_type=client_credentials`.",
    status_code=201,
    responses=problem_doc(401, 422),
)
async def create_client(
    body: OAuthClientCreateRequest, session: SessionDep, caller: Caller, response: Response
) -> OAuthClientCreated:
    client, secret = await clients.create_client(session, body, creator=caller)
    response.headers["Location"] = f"/api/v1/oauth-clients/{client.id}"
    response.headers["Cache-Control"] = "no-store"
    return OAuthClientCreated(**OAuthClientRead.model_validate(client).model_dump(), client_secret=secret)


@router.get(
    "",
    operation_id="oauth_clients_list",
    summary="List your OAuth clients (admins: everyone's)",
    responses=problem_doc(401),
)
async def list_clients(session: SessionDep, caller: Caller) -> list[OAuthClientRead]:
    return [OAuthClientRead.model_validate(c) for c in await clients.list_clients(session, viewer=caller)]


@router.get(
    "/{client_id}",
    operation_id="oauth_clients_get",
    summary="Get one of your OAuth clients (admins: anyone's)",
    responses=problem_doc(401, 404),
)
async def get_client(client_id: uuid.UUID, session: SessionDep, caller: Caller) -> OAuthClientRead:
    return OAuthClientRead.model_validate(await clients.get_client(session, client_id, viewer=caller))


@router.post(
    "/{client_id}/revoke",
    operation_id="oauth_clients_revoke",
    summary="Revoke an OAuth client: it gets no more tokens and those it holds stop working",
    description="At once on the gateway that revoked it; on other gateway replicas within "
    "`CRM_GATEWAY_API_KEY_CACHE_SECONDS` (5 s).",
    responses=problem_doc(401, 404),
)
async def revoke_client(
    client_id: uuid.UUID, session: SessionDep, caller: Caller, request: Request
) -> OAuthClientRead:
    client = await clients.revoke_client(session, client_id, viewer=caller)
    front_door = getattr(request.app.state, "front_door", None)
    if front_door is not None:
        # Once committed, so that no lookup in between caches the client as live again.
        after_commit(session, partial(front_door.forget_client, client.client_id))
    return OAuthClientRead.model_validate(client)
