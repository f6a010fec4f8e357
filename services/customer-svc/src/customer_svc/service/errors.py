"""customer-svc's refusals: one DomainError per kind, carrying the status and the stable code that
api-guide.md documents (the problem handler every app installs answers them)."""

from crm_common.errors import DomainError


class CustomerNotFound(DomainError):
    """A customer a body names (by `errors[].field`) does not exist, or not for this caller. A
    customer in the path is `crm_common.errors.not_found`."""

    status, code = 404, "CUSTOMER_NOT_FOUND"


class InvalidCustomer(DomainError):
    """The customer a change would leave is not valid (an individual without a name, a company
    without companyName), listed in `errors`."""

    status, code = 422, "VALIDATION_ERROR"


class CustomerEmailExists(DomainError):
    status, code = 409, "CUSTOMER_EMAIL_EXISTS"


class CustomerMerged(DomainError):
    """The customer was merged away: changes go to its survivor, `mergedIntoId`."""

    status, code = 409, "CUSTOMER_MERGED"


class CustomerNotConvertible(DomainError):
    """Only a LEAD or PROSPECT converts; `currentStatus` says what the customer is."""

    status, code = 409, "CUSTOMER_NOT_CONVERTIBLE"


class MergeSameCustomer(DomainError):
    status, code = 422, "MERGE_SAME_CUSTOMER"


class CustomerAlreadyMerged(DomainError):
    status, code = 409, "CUSTOMER_ALREADY_MERGED"


class MergeInvalidResult(DomainError):
    """The merge rules would leave the primary without a name."""

    status, code = 422, "MERGE_INVALID_RESULT"


class InvalidSort(DomainError):
    status, code = 422, "INVALID_SORT"


class SegmentNameExists(DomainError):
    status, code = 409, "SEGMENT_NAME_EXISTS"


class UnsupportedImportFormat(DomainError):
    """An import body neither CSV nor JSON lines (by its content type or `?format=`)."""

    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class ImportInvalidHeader(DomainError):
    """The CSV header is unreadable, or names unknown or duplicated columns, or no `email`:
    refused before any row is written."""

    status, code = 422, "IMPORT_INVALID_HEADER"


class ImportEmpty(DomainError):
    status, code = 422, "IMPORT_EMPTY"
