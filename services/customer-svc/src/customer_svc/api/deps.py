"""Who may call customer-svc's routes: the access aliases the routers share."""

from typing import Annotated

from crm_common.auth import Principal, require
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import Depends

# The caller with their record scopes (crm_common.record_scope): every query is limited to the
# customers they may read, and a write to those they may change.
CustomerAccess = Annotated[ScopedCaller, Depends(scoped("customers"))]
# A POST that only reads (evaluating a filter) needs read access, like a GET.
CustomerReader = Annotated[ScopedCaller, Depends(scoped("customers", "read"))]
# The import commits batch by batch in transactions of its own: its caller's teams are read before.
Importer = Annotated[ScopedCaller, Depends(scoped("customers", own_transaction=True))]
# Erasure (GDPR) is an administrator's act.
AdminAccess = Annotated[Principal, Depends(require("admin"))]
