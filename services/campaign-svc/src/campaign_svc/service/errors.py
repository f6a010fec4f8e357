"""campaign-svc's refusals: one DomainError per kind, carrying the status and the stable code that
api-guide.md documents (the problem handler every app installs answers them)."""

from crm_common.errors import DomainError


class InvalidCampaign(DomainError):
    """Dates out of order, or a field whose rule a schema cannot express (listed in `errors`)."""

    status, code = 422, "VALIDATION_ERROR"


class CampaignClosed(DomainError):
    """A COMPLETED or CANCELLED campaign: its targets, and most of its fields, no longer change."""

    status, code = 409, "CAMPAIGN_CLOSED"


class CampaignNotDeletable(DomainError):
    status, code = 409, "CAMPAIGN_NOT_DELETABLE"


class InvalidStatusTransition(DomainError):
    status, code = 409, "INVALID_STATUS_TRANSITION"


class CampaignNotRunning(DomainError):
    """Interactions are recorded only once a campaign has started and while it is not cancelled."""

    status, code = 409, "CAMPAIGN_NOT_RUNNING"


class TargetNotFound(DomainError):
    status, code = 404, "TARGET_NOT_FOUND"


class TargetBatchTooLarge(DomainError):
    status, code = 422, "TARGET_BATCH_TOO_LARGE"


class InteractionBatchTooLarge(DomainError):
    status, code = 422, "INTERACTION_BATCH_TOO_LARGE"


class InvalidInteractions(DomainError):
    """All or nothing: every bad item of the batch is listed in `errors`."""

    status, code = 422, "INVALID_INTERACTIONS"


class SegmentNotFound(DomainError):
    status, code = 404, "SEGMENT_NOT_FOUND"


class SegmentForbidden(DomainError):
    """customer-svc refused to evaluate the segment with the caller's token."""

    status, code = 403, "SEGMENT_FORBIDDEN"


class SegmentTooLarge(DomainError):
    status, code = 422, "SEGMENT_TOO_LARGE"


class CustomerServiceUnavailable(DomainError):
    """customer-svc could not answer a segment's members: nothing was written, retry later."""

    status, code = 503, "CUSTOMER_SERVICE_UNAVAILABLE"
