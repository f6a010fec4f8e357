"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`,
`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one
signature per secret in force, space separated, so a receiver keeps working through a rotation."""

import base64
import secrets as random
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes, the form every Standard Webhooks library reads."""
    return SECRET_PREFIX + base64.b64encode(random.token_bytes(SECRET_BYTES)).decode()


def signature_header(secrets: Sequence[str], *, msg_id: str, timestamp: datetime, body: bytes) -> str:
    return " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets)


def headers(secrets: Sequence[str], *, msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(secrets, msg_id=msg_id, timestamp=timestamp, body=body),
    }
