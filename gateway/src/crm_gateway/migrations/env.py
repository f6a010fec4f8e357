from crm_common.migrations import run_env
from crm_gateway.identity.models import metadata

run_env(metadata, with_directory=False)
