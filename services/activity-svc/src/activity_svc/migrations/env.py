from activity_svc.models import metadata
from crm_common.migrations import run_env

run_env(metadata, with_customer_refs=True, with_tombstones=True)
