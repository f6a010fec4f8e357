from crm_common.settings import ServiceSettings
from pydantic_settings import SettingsConfigDict


class Settings(ServiceSettings):
    """Env prefix `CRM_TICKET_`, falling back to `CRM_` for platform-wide values."""

    model_config = SettingsConfigDict(env_prefix="CRM_TICKET_", extra="ignore")
    service_name = "ticket"

    # A customer's reply (INBOUND communication) reopens a RESOLVED ticket within this many hours of
    # its resolution; later replies are recorded and leave the ticket resolved.
    reopen_window_hours: float = 168.0
    # A satisfaction rating can be replaced within this many hours of the first one; then it is final.
    satisfaction_change_window_hours: float = 24.0
    # The breach-escalation scheduler: on/off, how often it looks, how many tickets per transaction.
    escalation_enabled: bool = True
    escalation_interval_seconds: float = 30.0
    escalation_batch_size: int = 100
    # How often the metric deltas written by the ticket triggers are folded into the kept totals
    # (ticket_svc.service.metric_totals; the figures are exact either way, folding keeps the reads short).
    metrics_fold_interval_seconds: float = 2.0
