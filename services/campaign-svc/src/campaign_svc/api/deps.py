"""What campaign-svc's routes depend on: the caller's access and the service's settings."""

from typing import Annotated

from crm_common.record_scope import ScopedCaller, scoped
from fastapi import Depends, Request

from campaign_svc.settings import Settings

# The caller with their record scopes (crm_common.record_scope): campaigns by owner and team.
MarketingAccess = Annotated[ScopedCaller, Depends(scoped("campaigns"))]


def settings_of(request: Request) -> Settings:
    return request.app.state.campaign_settings
