from crm_common.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Env prefix `CRM_TICKET_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_TICKET_", extra="ignore")
    service_name = "ticket"
