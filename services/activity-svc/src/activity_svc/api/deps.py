"""What activity-svc's routes share: who may call them, the If-Match header, the type filter."""

from typing import Annotated

from crm_common.concurrency import if_match_header
from crm_common.pagination import any_of
from crm_common.record_scope import ScopedCaller, scoped
from fastapi import Depends

from activity_svc.models import ActivityType

# The caller with their record scopes (crm_common.record_scope): activities by owner.
ActivityAccess = Annotated[ScopedCaller, Depends(scoped("activities"))]
# A POST that only reads (batch/read) needs read access, like a GET.
ActivityReader = Annotated[ScopedCaller, Depends(scoped("activities", "read"))]
IfMatch = Annotated[str | None, if_match_header('The ETag you read, e.g. W/"3".')]
Types = Annotated[list[ActivityType], any_of(alias="type")]
