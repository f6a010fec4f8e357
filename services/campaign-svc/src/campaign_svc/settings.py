from crm_common.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Env prefix `CRM_CAMPAIGN_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_CAMPAIGN_", extra="ignore")
    service_name = "campaign"
