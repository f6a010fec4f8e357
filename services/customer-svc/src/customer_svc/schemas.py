"""Request and response models of the customer API (camelCase JSON)."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from crm_common.pagination import Page
from crm_common.schemas import ApiModel, StrictApiModel
from pydantic import EmailStr, Field, StringConstraints, model_validator

from customer_svc.models import AddressType, CustomerStatus, CustomerType, Priority

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]


class AddressIn(StrictApiModel):
    type: AddressType = AddressType.OTHER
    street: ShortText | None = None
    city: Annotated[str, StringConstraints(max_length=100)] | None = None
    state: Annotated[str, StringConstraints(max_length=100)] | None = None
    zip_code: Annotated[str, StringConstraints(max_length=20)] | None = None
    country: Annotated[str, StringConstraints(max_length=100)] | None = None
    is_primary: bool = False


class AddressRead(ApiModel):
    id: uuid.UUID
    type: AddressType
    street: str | None
    city: str | None
    state: str | None
    zip_code: str | None
    country: str | None
    is_primary: bool


class CustomerCreate(StrictApiModel):
    type: CustomerType = CustomerType.INDIVIDUAL
    first_name: Name | None = None
    last_name: Name | None = None
    title: Annotated[str, StringConstraints(max_length=100)] | None = None
    company_name: ShortText | None = None
    industry: Annotated[str, StringConstraints(max_length=100)] | None = None
    employee_count: Annotated[int, Field(ge=0)] | None = None
    annual_revenue: Money | None = None
    email: EmailStr
    phone: Phone | None = None
    mobile: Phone | None = None
    website: Annotated[str, StringConstraints(max_length=500)] | None = None
    status: CustomerStatus = CustomerStatus.LEAD
    priority: Priority = Priority.MEDIUM
    source: Annotated[str, StringConstraints(max_length=100)] | None = None
    source_campaign_id: uuid.UUID | None = None
    tags: Annotated[list[Tag], Field(max_length=100)] = []
    assigned_to_id: uuid.UUID | None = Field(default=None, description="Defaults to the caller.")
    team_id: uuid.UUID | None = None
    next_contact_date: datetime | None = None
    custom_fields: dict = {}
    notes: Annotated[str, StringConstraints(max_length=20000)] | None = None
    addresses: Annotated[list[AddressIn], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _names(self):
        if self.type == CustomerType.INDIVIDUAL and not (self.first_name or self.last_name):
            raise ValueError("an individual needs firstName or lastName")
        if self.type == CustomerType.COMPANY and not self.company_name:
            raise ValueError("a company needs companyName")
        if sum(1 for a in self.addresses if a.is_primary) > 1:
            raise ValueError("at most one address can be primary")
        if self.status == CustomerStatus.INACTIVE:
            raise ValueError("a new customer cannot start INACTIVE")
        return self


class CustomerRead(ApiModel):
    id: uuid.UUID
    customer_number: str
    type: CustomerType
    first_name: str | None
    last_name: str | None
    full_name: str
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
    team_id: uuid.UUID | None
    total_value: Decimal
    lifetime_value: Decimal
    last_contact_date: datetime | None
    next_contact_date: datetime | None
    custom_fields: dict
    notes: str | None
    merged_into_id: uuid.UUID | None
    addresses: list[AddressRead] = []
    created_at: datetime
    updated_at: datetime
    version: int


CustomerPage = Page[CustomerRead]
