"""The pipeline's refusals: one DomainError per kind, its status and stable code as api-guide.md
documents them (the problem handler turns each into its problem document). A missing record, a stale
version and an unknown customer use the shared helpers (not_found, stale, unknown_customer)."""

from crm_common.errors import DomainError


class InvalidInput(DomainError):
    """A rule across fields the request schema cannot express (a stage both won and lost, a forecast
    range that ends before it starts)."""

    status, code = 422, "VALIDATION_ERROR"


# Stages
class StageNameExists(DomainError):
    status, code = 409, "STAGE_NAME_EXISTS"


class StageInUse(DomainError):
    status, code = 409, "STAGE_IN_USE"


class NoActiveStage(DomainError):
    status, code = 409, "NO_ACTIVE_STAGE"


class NoWonStage(DomainError):
    status, code = 409, "NO_WON_STAGE"


class NoLostStage(DomainError):
    status, code = 409, "NO_LOST_STAGE"


# Products
class ProductCodeExists(DomainError):
    status, code = 409, "PRODUCT_CODE_EXISTS"


class ProductInUse(DomainError):
    status, code = 409, "PRODUCT_IN_USE"


class UnknownProduct(DomainError):
    status, code = 422, "UNKNOWN_PRODUCT"


class ProductNotActive(DomainError):
    status, code = 422, "PRODUCT_NOT_ACTIVE"


# Opportunities and their line items
class OpportunityNotOpen(DomainError):
    status, code = 409, "OPPORTUNITY_NOT_OPEN"


class OpportunityHasLineItems(DomainError):
    status, code = 409, "OPPORTUNITY_HAS_LINE_ITEMS"


class UnknownStage(DomainError):
    status, code = 422, "UNKNOWN_STAGE"


class InvalidStageTransition(DomainError):
    status, code = 422, "INVALID_STAGE_TRANSITION"


class LineItemExists(DomainError):
    status, code = 409, "LINE_ITEM_EXISTS"


class LineItemNotFound(DomainError):
    status, code = 404, "LINE_ITEM_NOT_FOUND"


class CurrencyMismatch(DomainError):
    """A price or an invoice in another currency than the opportunity's."""

    status, code = 422, "CURRENCY_MISMATCH"


# Invoices
class UnknownOpportunity(DomainError):
    status, code = 422, "UNKNOWN_OPPORTUNITY"


class OpportunityCustomerMismatch(DomainError):
    status, code = 422, "OPPORTUNITY_CUSTOMER_MISMATCH"


class InvalidInvoiceTransition(DomainError):
    status, code = 409, "INVALID_INVOICE_TRANSITION"
