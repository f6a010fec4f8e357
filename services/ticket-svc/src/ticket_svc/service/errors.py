"""ticket-svc's refusals: one DomainError per kind, carrying the status and the stable code that
api-guide.md documents (the problem handler every app installs answers them)."""

from crm_common.errors import DomainError


class TicketClosed(DomainError):
    """A CLOSED ticket is final: its fields, its status and its communications no longer change."""

    status, code = 422, "TICKET_CLOSED"


class UnknownTicket(DomainError):
    """A related ticket that does not exist, or the ticket itself (listed in `errors`)."""

    status, code = 422, "UNKNOWN_TICKET"


class ResolutionRequired(DomainError):
    """A resolved ticket needs its resolution: to resolve, and for as long as it stays resolved."""

    status, code = 422, "RESOLUTION_REQUIRED"


class InvalidStatusTransition(DomainError):
    status, code = 422, "INVALID_STATUS_TRANSITION"


class ReasonRequired(DomainError):
    status, code = 422, "REASON_REQUIRED"


class TicketNotResolved(DomainError):
    """Only a resolved or closed ticket can be rated."""

    status, code = 422, "TICKET_NOT_RESOLVED"


class SatisfactionAlreadyRated(DomainError):
    """The rating changes only within the change window after it was first given."""

    status, code = 409, "SATISFACTION_ALREADY_RATED"


class InvalidCommunication(DomainError):
    """A combination of direction, channel and author that a schema cannot rule out."""

    status, code = 422, "INVALID_COMMUNICATION"


class CommunicationNotFound(DomainError):
    status, code = 404, "COMMUNICATION_NOT_FOUND"


# An SLA policy is checked as a whole; the code names the first kind of problem found.
class InvalidTimeZone(DomainError):
    status, code = 422, "INVALID_TIME_ZONE"


class InvalidBusinessHours(DomainError):
    status, code = 422, "INVALID_BUSINESS_HOURS"


class InvalidSlaTargets(DomainError):
    status, code = 422, "INVALID_SLA_TARGETS"
