from pathlib import Path

from crm_common.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict

SERVICES = ("customer", "pipeline", "activity", "ticket", "campaign", "webhook")


def workers_share(limit: int, workers: int) -> int:
    """One worker's part of a limit counted in memory by each of `workers` processes."""
    return max(1, -(-limit // max(1, workers)))


class GatewaySettings(ServiceSettings):
    """Env prefix `CRM_GATEWAY_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_GATEWAY_", extra="ignore")
    service_name = "gateway"

    db_schema: str | None = "identity"

    admin_email: str = "admin@example.com"
    # Unset on first start: one is generated and printed once.
    admin_password: str | None = None
    jwt_private_key_file: Path | None = None
    access_token_ttl_seconds: int = 900
    # Each refresh token (password grant) lasts this long from its issue; using it answers a new one.
    refresh_token_ttl_seconds: int = 14 * 24 * 3600

    # Distributed mode: where each service answers. Unset: the service runs in this process.
    customer_url: str | None = None
    pipeline_url: str | None = None
    activity_url: str | None = None
    ticket_url: str | None = None
    campaign_url: str | None = None
    webhook_url: str | None = None
    upstream_timeout_seconds: float = 10.0
    # How long, from its arrival, a safe request may be held to retry it once after a service's 503
    # OVERLOADED, waiting its Retry-After. 0: the refusal goes straight to the client (kept fast, and
    # an overloaded service is not sent the same request again by the gateway as well as the client).
    upstream_overload_retry_seconds: float = 0.0
    max_body_bytes: int = 2 * 1024 * 1024
    # Import/export endpoints take bigger bodies.
    max_bulk_body_bytes: int = 1024**3

    # Per credential (token subject, API key, else client address): counted in Redis when
    # CRM_REDIS_URL is set (one limit for every gateway replica), else per gateway process.
    rate_limit_enabled: bool = True
    rate_limit_requests: int = 1200
    rate_limit_window_seconds: int = 60
    # `crm up --workers N` (`workers`, crm_gateway.workers): without Redis each worker counts the rate
    # limit and the sign-in failures in its own memory, so each enforces 1/N of them (rounded up): a
    # client never gets more than the limit in all, and may be refused sooner when its requests land
    # on one worker.
    redis_url: str | None = None
    # How long one gateway process trusts an API key lookup (revocation elsewhere takes this long).
    api_key_cache_seconds: float = 5.0
    # Addresses or networks (comma-separated) of proxies whose X-Forwarded-For is believed; empty: none.
    trusted_proxies: str = ""
    # Sign-in (crm_gateway.identity.login): argon2 hashes at once (0: half the CPUs, at least 1) and
    # how many may wait; failed attempts per account before a lock, the first lock (doubling to the
    # max); failed attempts per client address per window. Counted in Redis when redis_url is set.
    login_hash_concurrency: int = 0
    login_hash_queue: int = 64
    login_account_failures: int = 5
    login_lock_seconds: float = 15.0
    login_lock_max_seconds: float = 900.0
    login_address_failures: int = 20
    login_address_window_seconds: float = 300.0

    # The gateway's own routes (sign-in, dashboards, personal data) mostly wait on the services:
    # wider budgets than theirs.
    admission_read_limit: int = 128
    admission_write_limit: int = 64
    admission_queue: int = 512
    # Requests passed on to a service are admitted here too, per service (`<service>:read`/`:write`
    # budgets), so the excess is refused before the proxy: each service's share is its own limits
    # (8 / 4) and two more in its queue, which keeps it busy between requests (more only lengthens
    # its queue, and every served request's time with it). With several
    # replicas of a service (or of the gateway), scale by service replicas / gateway replicas. 0: off.
    admission_upstream_read_limit: int = 12
    admission_upstream_write_limit: int = 6

    # Time budget of each dashboard widget (its service calls together).
    dashboard_widget_timeout_seconds: float = 2.0

    def upstream_url(self, service: str) -> str | None:
        url: str | None = getattr(self, f"{service}_url")
        return url

    def private_key_path(self) -> Path:
        return self.jwt_private_key_file or self.data_dir / "jwt-private.pem"

    def public_key_path(self) -> Path:
        return self.jwt_public_key_file or self.data_dir / "jwt-public.pem"
