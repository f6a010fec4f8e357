"""Request and response models of the pipeline API (camelCase JSON)."""

import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from crm_common.batch import BatchInput, BatchResult, ExternalId
from crm_common.changes import Changes
from crm_common.currencies import ISO_4217
from crm_common.errors import refuse_nulls
from crm_common.pagination import Page
from crm_common.schemas import ApiModel, CustomFields, Money, StrictApiModel, decimal_string
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from pipeline_svc.models import InvoiceStatus, OpportunityStatus, ProductStatus


def _iso_currency(value: str) -> str:
    if value not in ISO_4217:
        raise ValueError(f"{value} is not an ISO 4217 currency code")
    return value


Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_iso_currency),
    Field(description="ISO 4217 code, upper case, e.g. `USD`.", examples=["USD"]),
]


# Sized like their NUMERIC(12, 2) and NUMERIC(5, 2) columns.
Quantity = decimal_string(max_digits=12, gt=0, example="1.00", description="Greater than 0.")
Discount = decimal_string(max_digits=5, ge=0, le=100, example="10.00", description="Percent off, 0 to 100.")
Probability = Annotated[int, Field(ge=0, le=100)]


def _iso_day(value):
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("must be a calendar date as YYYY-MM-DD")
    return value


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
# A calendar date as `YYYY-MM-DD`: no timestamps, no numbers.
Day = Annotated[date, BeforeValidator(_iso_day), Field(examples=["2026-12-31"])]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
LongText = Annotated[str, StringConstraints(max_length=20000)]
Color = Annotated[str, StringConstraints(pattern=r"^#(?:[0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})$")]

# What a stage requirement can ask of an opportunity: a field that must be set, `products` for at least
# one line item, or `customFields.<key>` for a custom field with a value.
FIELD_REQUIREMENTS = ("amount", "expectedCloseDate", "description", "teamId", "competitors", "products")
_CUSTOM_FIELD = re.compile(r"^customFields\.[A-Za-z0-9_\-]{1,100}$")


def _requirement(value: str) -> str:
    if value not in FIELD_REQUIREMENTS and not _CUSTOM_FIELD.match(value):
        raise ValueError(
            f"unknown requirement {value!r}: use one of {', '.join(FIELD_REQUIREMENTS)} or customFields.<key>"
        )
    return value


Requirement = Annotated[str, AfterValidator(_requirement)]


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("requirements must not repeat")
    return values


Requirements = Annotated[list[Requirement], Field(max_length=20), AfterValidator(_unique)]


# --- stages ---------------------------------------------------------------------------------------


class OpportunityStageCreateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    probability: Probability = 0
    sort_order: int = Field(ge=0, le=1_000_000)
    color: Color | None = None
    is_active: bool = True
    is_won: bool = False
    is_lost: bool = False
    requirements: Requirements = []

    @model_validator(mode="after")
    def _won_or_lost(self):
        if self.is_won and self.is_lost:
            raise ValueError("a stage cannot be both isWon and isLost")
        return self


class OpportunityStageUpdateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    probability: Probability | None = None
    sort_order: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    color: Color | None = None
    is_active: bool | None = None
    is_won: bool | None = None
    is_lost: bool | None = None
    requirements: Requirements | None = None
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")

    @model_validator(mode="after")
    def _nulls(self):
        refuse_nulls(
            self, ("name", "probability", "sort_order", "is_active", "is_won", "is_lost", "requirements")
        )
        return self


class OpportunityStageRead(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None
    probability: int
    sort_order: int
    color: str | None
    is_active: bool
    is_won: bool
    is_lost: bool
    requirements: list[str]
    created_at: datetime
    updated_at: datetime
    version: int


# --- products -------------------------------------------------------------------------------------

ProductCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._\-]{1,64}$")]
ProductName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ProductCreateRequest(StrictApiModel):
    name: ProductName
    code: ProductCode
    description: LongText | None = None
    category: Category | None = None
    price: Money
    cost: Money | None = None
    currency: Currency = "USD"
    status: ProductStatus = ProductStatus.ACTIVE
    custom_fields: CustomFields = {}


class ProductUpdateRequest(StrictApiModel):
    name: ProductName | None = None
    code: ProductCode | None = None
    description: LongText | None = None
    category: Category | None = None
    price: Money | None = None
    cost: Money | None = None
    currency: Currency | None = None
    status: ProductStatus | None = None
    custom_fields: CustomFields | None = None
    version: int | None = None

    @model_validator(mode="after")
    def _nulls(self):
        refuse_nulls(self, ("name", "code", "price", "currency", "status", "custom_fields"))
        return self


class ProductRead(ApiModel):
    id: uuid.UUID
    name: str
    code: str
    description: str | None
    category: str | None
    price: Decimal
    cost: Decimal | None
    currency: str
    status: ProductStatus
    custom_fields: dict
    created_at: datetime
    updated_at: datetime
    version: int


ProductPage = Page[ProductRead]


# --- opportunities --------------------------------------------------------------------------------

Competitor = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Competitors = Annotated[list[Competitor], Field(max_length=50)]


class OpportunityCreateRequest(StrictApiModel):
    title: Title
    external_id: ExternalId | None = None
    description: LongText | None = None
    customer_id: uuid.UUID
    amount: Money | None = Field(
        default=None,
        description="Set it to fix the amount by hand; leave it out to have it follow the line items.",
    )
    currency: Currency = "USD"
    expected_close_date: Day | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="Defaults to the caller.")
    team_id: uuid.UUID | None = None
    competitors: Competitors = []
    custom_fields: CustomFields = {}


class OpportunityUpdateRequest(StrictApiModel):
    """Field edits. `amount: null` hands the amount back to the line items. Stage and status change
    through the actions (`/stage`, `/win`, `/lose`)."""

    title: Title | None = None
    external_id: ExternalId | None = None
    description: LongText | None = None
    amount: Money | None = None
    currency: Currency | None = None
    probability: Probability | None = None
    expected_close_date: Day | None = None
    owner_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    competitors: Competitors | None = None
    custom_fields: CustomFields | None = None
    version: int | None = None

    @model_validator(mode="after")
    def _nulls(self):
        refuse_nulls(self, ("title", "currency", "probability", "owner_id", "competitors", "custom_fields"))
        return self


class OpportunityStageChangeRequest(StrictApiModel):
    stage_id: uuid.UUID
    version: int | None = None


class OpportunityLoseRequest(StrictApiModel):
    lost_reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    version: int | None = None


class OpportunityWinRequest(StrictApiModel):
    version: int | None = None


class OpportunityLineItemCreateRequest(StrictApiModel):
    product_id: uuid.UUID
    quantity: Quantity = Decimal("1.00")
    unit_price: Money | None = Field(
        default=None, description="In the opportunity's currency; defaults to the product's price."
    )
    discount: Discount = Decimal("0.00")
    description: Annotated[str, StringConstraints(max_length=500)] | None = None


class OpportunityLineItemUpdateRequest(StrictApiModel):
    quantity: Quantity | None = None
    unit_price: Money | None = None
    discount: Discount | None = None
    description: Annotated[str, StringConstraints(max_length=500)] | None = None

    @model_validator(mode="after")
    def _nulls(self):
        refuse_nulls(self, ("quantity", "unit_price", "discount"))
        return self


class OpportunityLineItemRead(ApiModel):
    id: uuid.UUID
    product_id: uuid.UUID
    product_name: str
    product_code: str
    description: str | None
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    line_total: Decimal
    currency: str


class OpportunityRead(ApiModel):
    id: uuid.UUID
    title: str
    external_id: str | None = None
    description: str | None
    customer_id: uuid.UUID
    customer_name: str | None
    amount: Decimal
    amount_manual: bool
    currency: str
    probability: int
    expected_close_date: date | None
    actual_close_date: date | None
    stage_id: uuid.UUID
    stage_name: str
    status: OpportunityStatus
    lost_reason: str | None
    owner_id: uuid.UUID
    owner_name: str | None
    team_id: uuid.UUID | None
    competitors: list
    custom_fields: dict
    line_items: list[OpportunityLineItemRead]
    created_by_id: uuid.UUID | None
    archived_at: datetime | None = Field(
        default=None, description="Set while archived: hidden from lists, purged after the retention."
    )
    created_at: datetime
    updated_at: datetime
    version: int


OpportunityPage = Page[OpportunityRead]
OpportunityChanges = Changes[OpportunityRead]


class OpportunityBatchUpdate(OpportunityUpdateRequest):
    """One item of `batch/update`: the opportunity's id and the fields to change."""

    id: uuid.UUID


class OpportunityBatchCreateRequest(BatchInput[OpportunityCreateRequest]):
    """The body of `batch/create` (and, for this resource, `batch/upsert`)."""


class OpportunityBatchUpdateRequest(BatchInput[OpportunityBatchUpdate]):
    """The body of `batch/update`."""


OpportunityBatchResult = BatchResult[OpportunityRead]


class OpportunityWinResult(ApiModel):
    opportunity: OpportunityRead
    invoice: "InvoiceRead"


# --- invoices -------------------------------------------------------------------------------------


class InvoiceLineInput(StrictApiModel):
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    product_id: uuid.UUID | None = None
    quantity: Quantity = Decimal("1.00")
    unit_price: Money
    discount: Discount = Decimal("0.00")


class InvoiceCreateRequest(StrictApiModel):
    customer_id: uuid.UUID
    opportunity_id: uuid.UUID | None = None
    currency: Currency = "USD"
    due_date: Day | None = None
    notes: LongText | None = None
    lines: Annotated[list[InvoiceLineInput], Field(min_length=1, max_length=200)]


class InvoiceActionRequest(StrictApiModel):
    version: int | None = None


class InvoiceLineRead(ApiModel):
    id: uuid.UUID
    position: int
    product_id: uuid.UUID | None
    description: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    line_total: Decimal


class InvoiceRead(ApiModel):
    id: uuid.UUID
    invoice_number: str
    customer_id: uuid.UUID
    opportunity_id: uuid.UUID | None
    status: InvoiceStatus
    currency: str
    total: Decimal
    issue_date: date | None
    due_date: date | None
    paid_date: date | None
    notes: str | None
    lines: list[InvoiceLineRead]
    created_by_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


InvoicePage = Page[InvoiceRead]
OpportunityWinResult.model_rebuild()


# --- forecast -------------------------------------------------------------------------------------


class ForecastDateRange(ApiModel):
    start: date
    end: date


class ForecastStage(ApiModel):
    stage_id: uuid.UUID
    stage_name: str
    count: int
    total_value: Decimal
    weighted_value: Decimal


class ForecastCurrency(ApiModel):
    currency: str
    total_opportunities: int
    total_value: Decimal
    weighted_value: Decimal
    best_case: Decimal = Field(description="Sum of amounts at probability 75 and above.")
    most_likely: Decimal = Field(description="Sum of amounts at probability 25 to 74.")
    worst_case: Decimal = Field(description="Sum of amounts below probability 25.")
    by_stage: list[ForecastStage]
    confidence: int


class SalesForecast(ApiModel):
    period: Literal["month", "quarter", "year", "custom"]
    date_range: ForecastDateRange
    owner_id: uuid.UUID | None
    team_id: uuid.UUID | None
    total_opportunities: int
    confidence: int = Field(description="min(95, max(10, 5 x opportunities)), 0 when there are none.")
    currencies: list[ForecastCurrency] = Field(description="One entry per currency, never summed across.")


# --- board ----------------------------------------------------------------------------------------


class PipelineBoardCard(ApiModel):
    id: uuid.UUID
    title: str
    customer_id: uuid.UUID
    customer_name: str | None
    amount: Decimal
    currency: str
    probability: int
    expected_close_date: date | None
    owner_id: uuid.UUID
    owner_name: str | None
    status: OpportunityStatus


class PipelineCurrencyTotal(ApiModel):
    currency: str
    count: int
    total_amount: Decimal
    avg_amount: Decimal


class PipelineColumnSummary(ApiModel):
    count: int
    totals: list[PipelineCurrencyTotal] = Field(description="totalAmount and avgAmount per currency.")


class PipelineBoardColumn(ApiModel):
    stage_id: uuid.UUID
    label: str
    color: str | None
    sort_order: int
    probability: int
    is_won: bool
    is_lost: bool
    requirements: list[str]
    summary: PipelineColumnSummary
    cards: list[PipelineBoardCard]
    has_more: bool


class PipelineBoard(ApiModel):
    columns: list[PipelineBoardColumn]
    cards_per_column: int
