"""The gateway's signing key (Ed25519) and the access tokens it issues."""

import logging
import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from crm_common.auth import ALGORITHM, permissions_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crm_gateway.identity.roles import DEFAULT_BOOK

log = logging.getLogger("crm.gateway.tokens")


def load_or_create_keypair(private_path: Path, public_path: Path) -> tuple[str, str]:
    """The private key from its file, created (mode 0600) with its public half on first start."""
    if private_path.exists():
        private_pem = private_path.read_bytes()
        key = serialization.load_pem_private_key(private_pem, password=None)
    else:
        key = Ed25519PrivateKey.generate()
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        private_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        log.info("generated a new token signing key at %s", private_path)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not public_path.exists() or public_path.read_bytes() != public_pem:
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_bytes(public_pem)
    return private_pem.decode(), public_pem.decode()


class TokenIssuer:
    def __init__(
        self,
        private_pem: str,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        refresh_ttl_seconds: int = 14 * 24 * 3600,
    ) -> None:
        self.private_pem = private_pem
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        # How long each refresh token lasts from its issue (crm_gateway.identity.refresh).
        self.refresh_ttl_seconds = refresh_ttl_seconds

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        email: str,
        name: str,
        roles: list[str],
        token_version: int = 0,
        permissions: Iterable[str] | None = None,
        scopes: dict[str, list[str]] | None = None,
    ) -> str:
        """`permissions` and `scopes` are what the roles grant now (crm_gateway.identity.roles); the
        built-in defaults when not given."""
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "email": email,
            "name": name,
            "roles": roles,
            "perms": sorted(permissions if permissions is not None else permissions_for(roles)),
            "scp": scopes if scopes is not None else DEFAULT_BOOK.scope_claim(roles),
            "tv": token_version,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_pem, algorithm=ALGORITHM)

    def issue_claims(
        self, claims: dict[str, Any], *, ttl_seconds: int, not_after: datetime | None = None
    ) -> str:
        """A token with these claims (used for API keys: a short life, never past the key's expiry)."""
        now = datetime.now(UTC)
        exp = now + timedelta(seconds=ttl_seconds)
        if not_after is not None and not_after < exp:
            exp = not_after
        full = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": exp,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(full, self.private_pem, algorithm=ALGORITHM)
