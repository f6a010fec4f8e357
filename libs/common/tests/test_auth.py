"""Token checks every service performs on its own."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest
from crm_common.auth import Principal, TokenVerifier, permissions_for, require
from crm_common.errors import ProblemError, install_problem_handlers
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture
def verifier(signing_key) -> TokenVerifier:
    return TokenVerifier(lambda: signing_key[1], issuer="crm-gateway", audience="crm")


def test_a_valid_token_gives_the_principal(verifier, make_token):
    user = uuid.uuid4()
    principal = verifier.verify(make_token(["sales_rep"], user_id=user))
    assert principal.id == user
    assert principal.roles == ("sales_rep",)
    assert principal.can("sales_access") and principal.can("customer_access")
    assert not principal.can("support_access")


def test_admin_can_do_everything():
    admin = Principal(uuid.uuid4(), "a@x", "A", ("admin",), permissions_for(["admin"]))
    assert all(admin.can(p) for p in ("customer_access", "marketing_access", "admin"))


def _status(verifier, token) -> int:
    with pytest.raises(ProblemError) as err:
        verifier.verify(token)
    return err.value.status


def test_expired_token_is_401(verifier, make_token):
    assert _status(verifier, make_token(expires_in=-10)) == 401


def test_a_remembered_token_is_refused_once_it_expires(verifier, make_token):
    token = make_token(["sales_rep"], expires_in=1)
    first = verifier.verify(token)
    assert verifier.verify(token) == first  # answered from the cache of verified tokens
    time.sleep(1.1)
    assert _status(verifier, token) == 401


def test_the_cache_of_verified_tokens_is_bounded(signing_key, make_token):
    verifier = TokenVerifier(lambda: signing_key[1], issuer="crm-gateway", audience="crm", cache_size=2)
    tokens = [make_token(user_id=uuid.uuid4()) for _ in range(3)]
    principals = [verifier.verify(t) for t in tokens]
    assert [verifier.verify(t) for t in tokens] == principals
    assert len(verifier._verified) == 2


def test_alg_none_is_401(verifier, make_token):
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = jwt.decode(make_token(), options={"verify_signature": False})
    token = f"{header}.{b64(json.dumps(claims).encode())}."
    assert _status(verifier, token) == 401


def test_hmac_token_signed_with_the_public_key_is_401(verifier, signing_key, make_token):
    # The classic algorithm-confusion attack: HS256 keyed with the (public) verification key.
    claims = jwt.decode(make_token(), options={"verify_signature": False})
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(signing_key[1].encode(), signing_input.encode(), hashlib.sha256).digest()
    assert _status(verifier, f"{signing_input}.{b64(signature)}") == 401


def test_token_from_another_key_is_401(verifier):
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "iss": "crm-gateway", "aud": "crm", "iat": 0, "exp": 4_000_000_000},
        other,
        algorithm="EdDSA",
    )
    assert _status(verifier, token) == 401


@pytest.mark.parametrize("claims", [{"iss": "someone-else"}, {"aud": "other-api"}])
def test_wrong_issuer_or_audience_is_401(verifier, make_token, claims):
    assert _status(verifier, make_token(**claims)) == 401


def test_garbage_is_401(verifier):
    assert _status(verifier, "not-a-token") == 401


def test_without_a_key_verification_is_unavailable(make_token):
    verifier = TokenVerifier(lambda: None, issuer="crm-gateway", audience="crm")
    assert _status(verifier, make_token()) == 503


@pytest.fixture
def app(verifier) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.state.token_verifier = verifier

    @app.get("/sales")
    async def sales(user: Principal = Depends(require("sales_access"))):
        return {"id": str(user.id)}

    return app


async def test_endpoint_permissions(app, auth_headers):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        none = await c.get("/sales")
        basic = await c.get("/sales", headers={"Authorization": "Basic dXNlcjpwdw=="})
        wrong_role = await c.get("/sales", headers=auth_headers("support_agent"))
        right_role = await c.get("/sales", headers=auth_headers("sales_rep"))
        expired = await c.get("/sales", headers=auth_headers("admin", expires_in=-5))
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["code"] == "UNAUTHORIZED"
    assert basic.status_code == 401
    assert wrong_role.status_code == 403 and wrong_role.json()["code"] == "FORBIDDEN"
    assert "sales_access" in wrong_role.json()["detail"]
    assert right_role.status_code == 200
    assert expired.status_code == 401


async def test_the_session_guard_refuses_revoked_tokens_and_looks_each_user_up_once_at_a_time():
    from crm_common.auth import SessionGuard

    calls = []
    states = {}

    async def lookup(user_id):
        calls.append(user_id)
        await asyncio.sleep(0.01)
        return states.get(user_id)

    guard = SessionGuard(lookup, ttl=60)
    user = uuid.uuid4()

    def principal(tv: int) -> Principal:
        return Principal(user, "a@x", "A", ("sales_rep",), permissions_for(["sales_rep"]), tv)

    await asyncio.gather(*(guard.check(principal(0)) for _ in range(20)))  # unknown user: allowed
    assert calls == [user]
    states[user] = (2, True)
    guard.forget(user)
    for tv in (0, 1):
        with pytest.raises(ProblemError) as err:
            await guard.check(principal(tv))
        assert (err.value.status, err.value.code) == (401, "TOKEN_REVOKED")
    await guard.check(principal(2))
    states[user] = (2, False)
    guard.forget(user)
    with pytest.raises(ProblemError) as err:
        await guard.check(principal(2))
    assert (err.value.status, err.value.code) == (401, "TOKEN_REVOKED")


def test_legacy_permission_names_stand_for_read_and_write():
    from crm_common.auth import expand_permissions, require_access

    assert expand_permissions(["customer_access", "tickets:read"]) == {
        "customers:read",
        "customers:write",
        "tickets:read",
    }
    reader = Principal(uuid.uuid4(), "r@x", "R", ("read_only",), permissions_for(["read_only"]))
    assert reader.can("sales:read") and not reader.can("sales:write") and not reader.can("sales_access")
    with pytest.raises(ValueError):
        require_access("wizards")
