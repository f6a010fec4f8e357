"""Events webhook-svc publishes."""

from datetime import datetime

from crm_common.contracts.webhook import WebhookDisabled
from crm_common.events.envelope import CloudEvent, event_from

SERVICE = "webhook"


def webhook_disabled(
    *,
    webhook_id,
    url: str,
    reason: str,
    consecutive_failures: int,
    failing_since: datetime | None,
    disabled_at: datetime,
    version: int,
) -> CloudEvent:
    payload = WebhookDisabled(
        webhook_id=webhook_id,
        url=url,
        reason=reason,
        consecutive_failures=consecutive_failures,
        failing_since=failing_since,
        disabled_at=disabled_at,
    )
    return event_from(payload, service=SERVICE, subject=webhook_id, sequence=version)
