"""OAuth2 clients for integrations (client credentials grant, RFC 6749 §4.4).

A client is an API key split in two: a public `client_id` (`crmc_...`) and a secret (`crms_...`, 256
random bits, kept as SHA-256 only). Any signed-in user may create one for themselves with a subset of
their own permissions; an admin sees and revokes everyone's. Its permissions follow its creator the way
an API key's do (crm_gateway.identity.credentials).
"""

import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from crm_common.auth import Principal
from crm_common.errors import ProblemError
from crm_common.models import utcnow
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_gateway.identity.credentials import (
    check_expiry,
    effective_permissions,
    grantable,
    hash_secret,
    usable,
)
from crm_gateway.identity.models import OAuthClient, User
from crm_gateway.identity.oauth_schemas import OAuthClientCreateRequest
from crm_gateway.identity.roles import role_book

ID_PREFIX = "crmc_"
SECRET_PREFIX = "crms_"


async def create_client(
    session: AsyncSession, data: OAuthClientCreateRequest, *, creator: Principal
) -> tuple[OAuthClient, str]:
    permissions = grantable(data.permissions, creator=creator, kind="client")
    check_expiry(data.expires_at)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=ID_PREFIX + secrets.token_hex(12),
        name=data.name,
        secret_hash=hash_secret(secret),
        permissions=permissions,
        created_by=creator.id,
        expires_at=data.expires_at,
    )
    session.add(client)
    await session.flush()
    return client, secret


async def list_clients(session: AsyncSession, *, viewer: Principal) -> list[OAuthClient]:
    query = select(OAuthClient).order_by(OAuthClient.created_at, OAuthClient.id)
    if not viewer.can("admin"):
        query = query.where(OAuthClient.created_by == viewer.id)
    return list((await session.execute(query)).scalars())


async def get_client(session: AsyncSession, client_id: uuid.UUID, *, viewer: Principal) -> OAuthClient:
    """404 for another user's client too (unless the viewer is an admin): its existence is not theirs."""
    client = await session.get(OAuthClient, client_id)
    if client is None or not (viewer.can("admin") or client.created_by == viewer.id):
        raise ProblemError(404, "OAUTH_CLIENT_NOT_FOUND", f"OAuth client {client_id} does not exist.")
    return client


async def revoke_client(session: AsyncSession, client_id: uuid.UUID, *, viewer: Principal) -> OAuthClient:
    client = await get_client(session, client_id, viewer=viewer)
    if client.revoked_at is None:  # revoking twice is fine and keeps the first time
        client.revoked_at = utcnow()
    return client


async def is_live(session: AsyncSession, client_id: str) -> bool:
    """Neither revoked nor expired (its creator's state reaches its tokens through the token version)."""
    row = (
        await session.execute(
            select(OAuthClient.revoked_at, OAuthClient.expires_at).where(OAuthClient.client_id == client_id)
        )
    ).first()
    return row is not None and usable(
        revoked_at=row.revoked_at, expires_at=row.expires_at, creator_active=True
    )


@dataclass(frozen=True)
class ClientIdentity:
    client_id: str
    name: str
    permissions: list[str]
    user_id: uuid.UUID
    email: str
    expires_at: datetime | None
    token_version: int
    # The creator's record scopes now: a client reads and writes the records its creator may.
    scopes: dict[str, list[str]] | None = None


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> ClientIdentity | None:
    """The client if the id and secret match, it is neither revoked nor expired and its creator is
    active; its permissions are its own intersected with its creator's current ones."""
    row = (
        await session.execute(
            select(OAuthClient, User)
            .join(User, User.id == OAuthClient.created_by)
            .where(OAuthClient.client_id == client_id)
        )
    ).first()
    # Compared in constant time, and hashed even for an unknown id, so timing tells nothing.
    presented = hash_secret(secret)
    if row is None:
        hmac.compare_digest(presented, hash_secret(""))
        return None
    client, user = row
    if not hmac.compare_digest(presented, client.secret_hash):
        return None
    if not usable(revoked_at=client.revoked_at, expires_at=client.expires_at, creator_active=user.is_active):
        return None
    book = await role_book(session)
    return ClientIdentity(
        client.client_id,
        client.name,
        effective_permissions(client.permissions, user.roles, book),
        user.id,
        user.email,
        client.expires_at,
        user.token_version,
        book.scope_claim(user.roles),
    )
