from crm_common.settings import PlatformSettings, ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Env prefix `CRM_CAMPAIGN_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_CAMPAIGN_", extra="ignore")
    service_name = "campaign"

    # Days after a campaign's start during which a won opportunity of one of its members or leads
    # is attributed to it.
    attribution_window_days: int = 90
    # FIRST_TOUCH (default) or LAST_TOUCH: which campaign gets the revenue when several qualify.
    attribution_model: str = "FIRST_TOUCH"
    # Most interactions one POST /campaigns/{id}/interactions may carry.
    interaction_batch_limit: int = 1000
    # Most customer ids one POST /campaigns/{id}/targets may carry.
    target_batch_limit: int = 1000
    # Most customers a segment may bring into a campaign in one request.
    segment_target_limit: int = 100_000
    # customer-svc's base URL (segments). Unset: the gateway of the embedded default.
    customer_url: str | None = None
    customer_timeout: float = 10.0

    @property
    def resolved_customer_url(self) -> str:
        if self.customer_url:
            return self.customer_url.rstrip("/")
        return PlatformSettings().local_url
