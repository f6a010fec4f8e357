from crm_common.migrations import run_env
from ticket_svc.models import metadata

run_env(metadata, with_customer_refs=True, with_tombstones=True)
