"""What webhook-svc's routes depend on: the caller's access and the service's settings."""

from typing import Annotated

from crm_common.auth import Principal, require_access
from fastapi import Depends, Request

from webhook_svc.settings import Settings

WebhookAccess = Annotated[Principal, Depends(require_access("webhooks"))]


def settings_of(request: Request) -> Settings:
    return request.app.state.webhook_settings
