"""webhook-svc's refusals: one DomainError per kind, carrying the status and the stable code that
api-guide.md and webhooks.md document (the problem handler every app installs answers them)."""

from crm_common.errors import DomainError


class InvalidWebhook(DomainError):
    """A field a PATCH may not empty, sent as null (each listed in `errors`)."""

    status, code = 422, "VALIDATION_ERROR"


class UnknownEventType(DomainError):
    """An event type pattern that matches no type of the catalogue (each listed in `errors`)."""

    status, code = 422, "UNKNOWN_EVENT_TYPE"


class InvalidFilter(DomainError):
    status, code = 422, "INVALID_FILTER"


class InvalidWebhookUrl(DomainError):
    """Not an http(s) URL with a host (or one carrying credentials)."""

    status, code = 422, "INVALID_WEBHOOK_URL"


class WebhookTargetForbidden(DomainError):
    """The URL resolves to an address webhooks may not go to (loopback, private, metadata, ...)."""

    status, code = 422, "WEBHOOK_TARGET_FORBIDDEN"


class DeliveryPending(DomainError):
    status, code = 409, "DELIVERY_PENDING"


class DeliverySkipped(DomainError):
    status, code = 409, "DELIVERY_SKIPPED"


class InvalidRange(DomainError):
    status, code = 422, "INVALID_RANGE"


class WebhookInactive(DomainError):
    status, code = 409, "WEBHOOK_INACTIVE"
