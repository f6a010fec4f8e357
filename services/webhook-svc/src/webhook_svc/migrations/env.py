from crm_common.migrations import run_env
from webhook_svc.models import metadata

run_env(metadata)
