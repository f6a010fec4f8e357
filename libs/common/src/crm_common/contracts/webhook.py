"""Events published by webhook-svc."""

import uuid
from datetime import datetime
from typing import ClassVar

from crm_common.contracts.base import EventData


class WebhookDisabled(EventData):
    """A webhook subscription was switched off after failing for too long (or by an administrator).
    Nothing is delivered to it until it is activated again (`PATCH /api/v1/webhooks/{id}`)."""

    event_type: ClassVar[str] = "webhook.disabled"

    webhook_id: uuid.UUID
    url: str
    reason: str
    consecutive_failures: int
    failing_since: datetime | None = None
    disabled_at: datetime
