from typing import Annotated

from crm_common.auth import Principal, require, require_access
from crm_common.concurrency import if_match_header
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import Depends

SalesAccess = Annotated[Principal, Depends(require_access("sales"))]
# Opportunities: the caller with their record scopes (crm_common.record_scope).
SalesCaller = Annotated[ScopedCaller, Depends(scoped("sales"))]
# A POST that only reads (batch/read) needs read access, like a GET.
SalesReader = Annotated[ScopedCaller, Depends(scoped("sales", "read"))]
# Configuring the pipeline (its stages) is an administrator's job.
AdminAccess = Annotated[Principal, Depends(require("admin"))]
IfMatch = Annotated[
    str | None, if_match_header('The ETag you read, e.g. `W/"3"`; 412 when the resource changed since.')
]
