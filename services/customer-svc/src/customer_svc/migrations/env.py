from crm_common.migrations import run_env
from customer_svc.models import metadata

run_env(metadata, with_tombstones=True)
