"""Request and response models of the customer API (camelCase JSON)."""

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from crm_common.batch import BatchInput, BatchResult, ExternalId
from crm_common.changes import Changes
from crm_common.currencies import ISO_4217
from crm_common.pagination import Page
from crm_common.schemas import ApiModel, CustomFields, Money, StrictApiModel
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from customer_svc.models import AddressType, CustomerStatus, CustomerType, Priority

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Text100 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Tags = Annotated[list[Tag], Field(max_length=100)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)]
Website = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Notes = Annotated[str, StringConstraints(max_length=20000)]


def _iso_4217(code: str) -> str:
    if code not in ISO_4217:
        raise PydanticCustomError("currency", "{code} is not an ISO 4217 currency code", {"code": code})
    return code


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_iso_4217)]


def _read_only(reason: str) -> Any:
    """A field a client may not set: present in a body it is a 422 naming the field (code
    `read_only`), rather than an anonymous "extra field"; absent from the OpenAPI schema."""

    def reject(_value):
        raise PydanticCustomError("read_only", reason)

    return Annotated[SkipJsonSchema[Any], BeforeValidator(reject)]


def _ro() -> Any:
    return Field(default=None, exclude=True)


class _RejectsReadOnly(StrictApiModel):
    """Read-only fields of the customer, refused in create and update bodies."""

    id: _read_only("id is assigned by the server") = _ro()
    customer_number: _read_only("customerNumber is allocated by the server") = _ro()
    full_name: _read_only("fullName is derived from firstName/lastName or companyName") = _ro()
    total_value: _read_only("totalValue is computed from the customer's open opportunities") = _ro()
    lifetime_value: _read_only("lifetimeValue is computed from the customer's won opportunities") = _ro()
    value_currency: _read_only("valueCurrency is computed") = _ro()
    value_totals: _read_only("valueTotals is computed") = _ro()
    last_contact_date: _read_only("lastContactDate moves with completed activities and messages") = _ro()
    merged_into_id: _read_only("mergedIntoId is set by POST /customers/merge") = _ro()
    assigned_to_name: _read_only("assignedToName comes from the user directory") = _ro()
    created_at: _read_only("createdAt is set by the server") = _ro()
    updated_at: _read_only("updatedAt is set by the server") = _ro()


class AddressInput(StrictApiModel):
    type: AddressType = AddressType.OTHER
    street: ShortText | None = None
    city: Text100 | None = None
    state: Text100 | None = None
    zip_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)] | None = None
    country: Text100 | None = None
    is_primary: bool = False


Addresses = Annotated[list[AddressInput], Field(max_length=20)]


def _one_primary(addresses: list[AddressInput] | None) -> None:
    if addresses and sum(1 for a in addresses if a.is_primary) > 1:
        raise ValueError("at most one address can be primary")


class AddressRead(ApiModel):
    id: uuid.UUID
    type: AddressType
    street: str | None
    city: str | None
    state: str | None
    zip_code: str | None
    country: str | None
    is_primary: bool


class _CustomerColumns(_RejectsReadOnly):
    """The customer's columns a client writes, typed once, in the order the API documents them. A
    column that cannot be empty defaults to None here, meaning "not sent": an explicit null for it
    is refused. The create gives those their defaults (a subclass's override keeps the field's
    place, so the document's order stays as it is)."""

    type: CustomerType = Field(default=None)
    external_id: ExternalId | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    title: Text100 | None = None
    company_name: ShortText | None = None
    industry: Text100 | None = None
    employee_count: Annotated[int, Field(ge=0)] | None = None
    annual_revenue: Money | None = None
    email: EmailStr = Field(default=None)
    phone: Phone | None = None
    mobile: Phone | None = None
    website: Website | None = None
    status: CustomerStatus = Field(default=None)
    priority: Priority = Field(default=None)
    source: Text100 | None = None
    source_campaign_id: uuid.UUID | None = None
    tags: Tags = Field(default=None)
    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    next_contact_date: AwareDatetime | None = None
    custom_fields: CustomFields = Field(default=None)
    notes: Notes | None = None
    addresses: Addresses = Field(default=None)


class CustomerCreateRequest(_CustomerColumns):
    type: CustomerType = CustomerType.INDIVIDUAL
    email: EmailStr
    status: CustomerStatus = CustomerStatus.LEAD
    priority: Priority = Priority.MEDIUM
    tags: Tags = []
    assigned_to_id: uuid.UUID | None = Field(default=None, description="Defaults to the caller.")
    custom_fields: CustomFields = {}
    addresses: Addresses = []
    version: _read_only("a new customer has no version yet") = _ro()

    @model_validator(mode="after")
    def _names(self):
        if self.type == CustomerType.INDIVIDUAL and not (self.first_name or self.last_name):
            raise ValueError("an individual needs firstName or lastName")
        if self.type == CustomerType.COMPANY and not self.company_name:
            raise ValueError("a company needs companyName")
        _one_primary(self.addresses)
        if self.status == CustomerStatus.INACTIVE:
            raise ValueError("a new customer cannot start INACTIVE")
        return self


# A PATCH body: the fields sent change (`model_fields_set`); a field that cannot be empty (type,
# email, status, priority, tags, customFields, addresses) refuses an explicit null.
class CustomerUpdateRequest(_CustomerColumns):
    assigned_to_id: _read_only("assign with POST /customers/{id}/assign") = _ro()
    team_id: _read_only("assign with POST /customers/{id}/assign") = _ro()
    custom_fields: CustomFields = Field(default=None, description="Replaces the whole object.")
    addresses: Addresses = Field(default=None, description="Replaces all the customer's addresses.")
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, addresses):
        _one_primary(addresses)
        return addresses

    def changes(self) -> dict[str, Any]:
        """The fields sent, snake_case, without the version."""
        return {name: getattr(self, name) for name in self.model_fields_set if name != "version"}


class ValueTotal(ApiModel):
    currency: str
    total_value: Decimal = Field(description="Open opportunities in this currency.")
    lifetime_value: Decimal = Field(description="Won opportunities in this currency.")


class CustomerRead(ApiModel):
    id: uuid.UUID
    customer_number: str
    type: CustomerType
    first_name: str | None
    last_name: str | None
    full_name: str
    external_id: str | None = None
    title: str | None
    company_name: str | None
    industry: str | None
    employee_count: int | None
    annual_revenue: Decimal | None
    email: str
    phone: str | None
    mobile: str | None
    website: str | None
    status: CustomerStatus
    priority: Priority
    source: str | None
    source_campaign_id: uuid.UUID | None
    tags: list[str]
    assigned_to_id: uuid.UUID | None
    assigned_to_name: str | None = Field(default=None, description="From the user directory.")
    team_id: uuid.UUID | None
    total_value: Decimal = Field(description="Sum of open opportunities, in `valueCurrency`.")
    lifetime_value: Decimal = Field(description="Sum of won opportunities, in `valueCurrency`.")
    value_currency: str = Field(description="Currency of totalValue and lifetimeValue.")
    value_totals: list[ValueTotal] = Field(default=[], description="Per currency, when they differ.")
    last_contact_date: datetime | None
    next_contact_date: datetime | None
    custom_fields: dict
    notes: str | None
    merged_into_id: uuid.UUID | None
    archived_at: datetime | None = Field(
        default=None, description="Set while archived: hidden from lists, purged after the retention."
    )
    erased_at: datetime | None = Field(
        default=None,
        description="Set once the person's data was erased on request (GDPR art. 17): names and contact "
        "data are gone, the record stays for what refers to it. See docs/privacy.md.",
    )
    addresses: list[AddressRead] = []
    created_at: datetime
    updated_at: datetime
    version: int


CustomerPage = Page[CustomerRead]
CustomerChanges = Changes[CustomerRead]


class CustomerBatchUpdate(CustomerUpdateRequest):
    """One item of `batch/update`: the customer's id and the fields to change."""

    id: uuid.UUID


class CustomerBatchCreateRequest(BatchInput[CustomerCreateRequest]):
    """The body of `batch/create`."""


class CustomerBatchUpdateRequest(BatchInput[CustomerBatchUpdate]):
    """The body of `batch/update`."""


class CustomerBatchUpsertRequest(BatchInput[CustomerCreateRequest]):
    id_property: Literal["email", "externalId"] = Field(
        "email",
        description="The field that finds an existing customer: `email` (case-insensitive) or `externalId`. "
        "Found: the fields sent are updated (200; assignee and team stay as they are). Not found: created (201).",
    )


CustomerBatchResult = BatchResult[CustomerRead]


class RankedCustomer(ApiModel):
    value: Decimal = Field(description="The ranked measure, in the group's currency.")
    customer: CustomerRead


class CurrencyRanking(ApiModel):
    currency: str
    items: list[RankedCustomer] = Field(description="Highest value first.")


class CustomerRanking(ApiModel):
    measure: str = Field(description="`lifetimeValue` (won) or `totalValue` (open).")
    currencies: list[CurrencyRanking] = Field(description="One ranking per currency, by currency code.")


# --- actions -----------------------------------------------------------------------------------


class OpportunityDraftInput(StrictApiModel):
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    description: Notes | None = None
    amount: Money | None = None
    currency: Currency = "USD"
    expected_close_date: date | None = None
    stage_id: uuid.UUID | None = None
    probability: Annotated[int, Field(ge=0, le=100)] = 25


class OpportunityDraftRead(ApiModel):
    opportunity_id: uuid.UUID = Field(description="Assigned here; pipeline-svc creates it with this id.")
    title: str
    description: str | None
    amount: Decimal | None
    currency: str
    expected_close_date: date | None
    stage_id: uuid.UUID | None
    probability: int | None
    owner_id: uuid.UUID | None


class CustomerConvertRequest(StrictApiModel):
    opportunity: OpportunityDraftInput | None = None
    version: int | None = Field(default=None, description="Optional; or send If-Match.")


class ConvertResult(ApiModel):
    customer: CustomerRead
    opportunity: OpportunityDraftRead | None = None


class MergeRule(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"
    COMBINE = "combine"
    LATEST = "latest"


class MergeField(StrEnum):
    """Fields a merge rule may name (camelCase, as in the API)."""

    type = "type"
    firstName = "firstName"
    lastName = "lastName"
    title = "title"
    companyName = "companyName"
    industry = "industry"
    employeeCount = "employeeCount"
    annualRevenue = "annualRevenue"
    email = "email"
    phone = "phone"
    mobile = "mobile"
    website = "website"
    status = "status"
    priority = "priority"
    source = "source"
    sourceCampaignId = "sourceCampaignId"
    tags = "tags"
    assignedToId = "assignedToId"
    teamId = "teamId"
    nextContactDate = "nextContactDate"
    notes = "notes"


COMBINABLE = {MergeField.tags, MergeField.notes}


class CustomerMergeRequest(StrictApiModel):
    primary_customer_id: uuid.UUID
    secondary_customer_id: uuid.UUID
    merge_rules: dict[MergeField, MergeRule] = Field(
        default={},
        description="Per field: `primary` (default), `secondary`, `latest`, or `combine` (tags, notes).",
    )

    @field_validator("merge_rules")
    @classmethod
    def _combine_only_tags_and_notes(cls, rules: dict[MergeField, MergeRule]):
        bad = sorted(f.value for f, r in rules.items() if r == MergeRule.COMBINE and f not in COMBINABLE)
        if bad:
            raise ValueError(f"`combine` applies to tags and notes only, not {', '.join(bad)}")
        return rules


class MergeResult(ApiModel):
    customer: CustomerRead = Field(description="The primary customer after the merge.")
    merged_customer: CustomerRead = Field(description="The secondary customer, now INACTIVE.")


class CustomerAssignRequest(StrictApiModel):
    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    version: int | None = Field(default=None, description="Optional; or send If-Match.")

    @model_validator(mode="after")
    def _something(self):
        if not ({"assigned_to_id", "team_id"} & self.model_fields_set):
            raise ValueError("send assignedToId and/or teamId (null clears it)")
        return self


# --- segments ----------------------------------------------------------------------------------

Uuids = Annotated[list[uuid.UUID], Field(max_length=200)]
Strings = Annotated[list[Text100], Field(max_length=200)]
CustomValue = str | int | float | bool


class SegmentFilter(StrictApiModel):
    """Every condition given must hold; a list means "any of"."""

    status: Annotated[list[CustomerStatus], Field(max_length=10)] = []
    type: Annotated[list[CustomerType], Field(max_length=10)] = []
    priority: Annotated[list[Priority], Field(max_length=10)] = []
    industry: Strings = []
    source: Strings = []
    tags: Annotated[Tags, Field(description="Customers with any of these tags.")] = []
    tags_all: Annotated[Tags, Field(description="Customers with all of these tags.")] = []
    assigned_to_id: Uuids = []
    team_id: Uuids = []
    value_currency: Currency | None = None
    total_value_min: Money | None = None
    total_value_max: Money | None = None
    lifetime_value_min: Money | None = None
    lifetime_value_max: Money | None = None
    last_contact_from: AwareDatetime | None = None
    last_contact_to: AwareDatetime | None = None
    created_from: AwareDatetime | None = None
    created_to: AwareDatetime | None = None
    custom_fields: Annotated[
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r'^[^"\\]+$')], CustomValue
        ],
        Field(max_length=20, description="Equality on top-level custom fields."),
    ] = {}

    @model_validator(mode="after")
    def _ranges(self):
        for low, high in (
            ("total_value_min", "total_value_max"),
            ("lifetime_value_min", "lifetime_value_max"),
            ("last_contact_from", "last_contact_to"),
            ("created_from", "created_to"),
        ):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a > b:
                raise PydanticCustomError(
                    "invalid_range", "{low} must not be greater than {high}", {"low": low, "high": high}
                )
        return self


class SegmentCreateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Notes | None = None
    filter: SegmentFilter = SegmentFilter()


class SegmentUpdateRequest(StrictApiModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        default=None
    )
    description: Notes | None = None
    filter: SegmentFilter = Field(default=None)
    version: int | None = Field(default=None, description="The version you read (or send If-Match).")


class SegmentRead(ApiModel):
    id: uuid.UUID
    name: str
    description: str | None
    filter: SegmentFilter
    created_by_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


SegmentPage = Page[SegmentRead]


class SegmentPreviewRequest(StrictApiModel):
    filter: SegmentFilter = SegmentFilter()


# --- import ------------------------------------------------------------------------------------


class CustomerImportRow(_RejectsReadOnly):
    """One imported customer, matched by email: created when new (then the create rules apply:
    a name, not INACTIVE), else only the fields given change. `None` here means "not given"."""

    type: CustomerType = Field(default=None)
    first_name: Name | None = None
    last_name: Name | None = None
    title: Text100 | None = None
    company_name: ShortText | None = None
    industry: Text100 | None = None
    employee_count: Annotated[int, Field(ge=0)] | None = None
    annual_revenue: Money | None = None
    email: EmailStr
    phone: Phone | None = None
    mobile: Phone | None = None
    website: Website | None = None
    status: CustomerStatus = Field(default=None)
    priority: Priority = Field(default=None)
    source: Text100 | None = None
    source_campaign_id: uuid.UUID | None = None
    tags: Tags = Field(default=None)
    assigned_to_id: uuid.UUID | None = None
    team_id: uuid.UUID | None = None
    next_contact_date: AwareDatetime | None = None
    custom_fields: CustomFields = Field(default=None)
    notes: Notes | None = None
    addresses: Addresses = Field(default=None, description="JSON lines only; replaces the addresses.")
    version: _read_only("imports match by email, not by version") = _ro()

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, addresses):
        _one_primary(addresses)
        return addresses


class ImportRowError(ApiModel):
    line: int = Field(description="1-based line of the file where the row starts.")
    field: str | None = None
    message: str
    code: str


class ImportedRecord(ApiModel):
    line: int = Field(description="1-based line of the file where the row starts.")
    id: uuid.UUID
    outcome: Literal["CREATED", "UPDATED"]


class ImportResult(ApiModel):
    dry_run: bool
    completed: bool = Field(description="False when the file could not be read to its end (see errors).")
    format: str
    rows: int = Field(description="Data rows read (header excluded).")
    created: int
    updated: int
    unchanged: int
    failed: int
    errors: list[ImportRowError]
    errors_truncated: bool = False
    ignored_columns: list[str] = Field(default=[], description="Read-only export columns, ignored.")
    records: list[ImportedRecord] = Field(
        default=[], description="The customer each row created or updated, in file order (none in a dry run)."
    )
