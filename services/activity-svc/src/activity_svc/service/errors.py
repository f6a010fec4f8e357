"""activity-svc's refusals: one DomainError per kind, with the status and code api-guide.md documents.

The problem handler every app installs turns each into its problem document (crm_common.errors)."""

from crm_common.errors import DomainError, FieldError


class InvalidField(DomainError):
    """A 422 about one field of the request: the problem lists it with the code in lower case."""

    field: str

    def __init__(self, detail: str, *, message: str | None = None):
        error = FieldError(field=self.field, message=message or detail, code=self.code.lower())
        super().__init__(detail, errors=[error])


class InvalidInitialStatus(InvalidField):
    status, code, field = 422, "INVALID_INITIAL_STATUS", "status"


class EndBeforeStart(InvalidField):
    status, code, field = 422, "END_BEFORE_START", "endDate"


class DurationMismatch(InvalidField):
    status, code, field = 422, "DURATION_MISMATCH", "duration"


class InvalidTimeZone(InvalidField):
    status, code, field = 422, "INVALID_TIME_ZONE", "timeZone"


class UnknownUser(DomainError):
    """Owners and participants must be known, active users of the directory (one error per id)."""

    status, code = 422, "UNKNOWN_USER"


class SystemActivityReadOnly(DomainError):
    status, code = 409, "SYSTEM_ACTIVITY_READ_ONLY"


class InvalidStatusTransition(DomainError):
    status, code = 409, "INVALID_STATUS_TRANSITION"
