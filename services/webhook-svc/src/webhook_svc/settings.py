import json
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated

from crm_common.settings import ServiceSettings
from pydantic import field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

# When each attempt of a delivery is made, counted from the previous one (the Standard Webhooks
# schedule): at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; about 27.5 hours from first to last.
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


class Settings(ServiceSettings):
    """Env prefix `CRM_WEBHOOK_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_WEBHOOK_", extra="ignore")
    service_name = "webhook"

    # Targets inside these networks are allowed although not public (CIDRs, comma separated or a
    # JSON list). Empty: only public addresses (tests and on-premise receivers name theirs here).
    allowed_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    # Seconds before each attempt, counted from the previous one; the first is normally 0.
    retry_schedule_seconds: Annotated[list[float], NoDecode] = list(DEFAULT_RETRY_SCHEDULE)
    # The whole exchange with a receiver (connect, send, first bytes of the answer).
    timeout_seconds: float = 10.0
    # Deliveries in flight at once (per process).
    delivery_concurrency: int = 16
    # A claimed delivery is someone else's to retry after this long (its sender died).
    lease_seconds: float = 120.0
    poll_interval: float = 1.0
    # A subscription is switched off when its deliveries have failed for this long without a single
    # success in between, and at least `disable_after_failures` attempts in a row failed.
    disable_after_hours: float = 120.0
    disable_after_failures: int = 15
    # How long the previous secret keeps signing after a rotation, unless the request names a period.
    rotation_grace_hours: float = 24.0

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value):
        if isinstance(value, str):
            value = _split(value)
        return [ip_network(v, strict=False) if isinstance(v, str) else v for v in value]

    @field_validator("retry_schedule_seconds", mode="before")
    @classmethod
    def _schedule(cls, value):
        if isinstance(value, str):
            value = [float(v) for v in _split(value)]
        if not value:
            raise ValueError("at least one attempt")
        return value


def _split(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in json.loads(value)]
    return [v.strip() for v in value.split(",") if v.strip()]
