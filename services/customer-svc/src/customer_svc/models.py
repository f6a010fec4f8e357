"""Customer tables (the seed's Customer and CustomerAddress), no schema name baked in."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from crm_common.models import (
    Field,
    SQLModel,
    id_field,
    json_field,
    money_field,
    new_registry,
    timestamp_field,
)
from sqlmodel import Relationship

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class CustomerType(StrEnum):
    INDIVIDUAL = "INDIVIDUAL"
    COMPANY = "COMPANY"


class CustomerStatus(StrEnum):
    LEAD = "LEAD"
    PROSPECT = "PROSPECT"
    CUSTOMER = "CUSTOMER"
    INACTIVE = "INACTIVE"


class Priority(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"


class AddressType(StrEnum):
    BILLING = "BILLING"
    SHIPPING = "SHIPPING"
    OFFICE = "OFFICE"
    HOME = "HOME"
    OTHER = "OTHER"


class Customer(Base, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        # Case-insensitive uniqueness enforced by the database, not by a racy check-then-insert.
        sa.Index("uq_customers_email_lower", sa.func.lower(sa.text("email")), unique=True),
        sa.Index("ix_customers_full_name", "full_name"),
    )

    id: uuid.UUID = id_field()
    customer_number: str = Field(sa_type=sa.String(32), unique=True, nullable=False)
    type: str = Field(default=CustomerType.INDIVIDUAL, sa_type=sa.String(16), nullable=False)
    first_name: str | None = Field(default=None, sa_type=sa.String(100))
    last_name: str | None = Field(default=None, sa_type=sa.String(100))
    full_name: str = Field(sa_type=sa.String(300), nullable=False)
    title: str | None = Field(default=None, sa_type=sa.String(100))
    company_name: str | None = Field(default=None, sa_type=sa.String(300))
    industry: str | None = Field(default=None, sa_type=sa.String(100))
    employee_count: int | None = None
    annual_revenue: Decimal | None = money_field()
    email: str = Field(sa_type=sa.String(320), nullable=False)
    phone: str | None = Field(default=None, sa_type=sa.String(50))
    mobile: str | None = Field(default=None, sa_type=sa.String(50))
    website: str | None = Field(default=None, sa_type=sa.String(500))
    status: str = Field(default=CustomerStatus.LEAD, sa_type=sa.String(16), nullable=False, index=True)
    priority: str = Field(default=Priority.MEDIUM, sa_type=sa.String(16), nullable=False)
    source: str | None = Field(default=None, sa_type=sa.String(100))
    source_campaign_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    tags: list[str] = json_field(list)
    assigned_to_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    total_value: Decimal = money_field(Decimal("0"), nullable=False)
    lifetime_value: Decimal = money_field(Decimal("0"), nullable=False)
    last_contact_date: datetime | None = timestamp_field(nullable=True)
    next_contact_date: datetime | None = timestamp_field(nullable=True)
    custom_fields: dict = json_field(dict)
    notes: str | None = Field(default=None, sa_type=sa.Text())
    merged_into_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = timestamp_field()
    version: int = Field(default=1, nullable=False)

    addresses: list["CustomerAddress"] = Relationship(
        sa_relationship_kwargs={"lazy": "raise", "cascade": "all, delete-orphan", "passive_deletes": True}
    )


class CustomerAddress(Base, table=True):
    __tablename__ = "customer_addresses"

    id: uuid.UUID = id_field()
    customer_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="customers.id", ondelete="CASCADE", index=True
    )
    type: str = Field(default=AddressType.OTHER, sa_type=sa.String(16), nullable=False)
    street: str | None = Field(default=None, sa_type=sa.String(300))
    city: str | None = Field(default=None, sa_type=sa.String(100))
    state: str | None = Field(default=None, sa_type=sa.String(100))
    zip_code: str | None = Field(default=None, sa_type=sa.String(20))
    country: str | None = Field(default=None, sa_type=sa.String(100))
    is_primary: bool = Field(default=False, nullable=False)


class CustomerNumberCounter(Base, table=True):
    """One row per year; incremented under a row lock, so numbers are consecutive and never reused."""

    __tablename__ = "customer_number_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_value: int = Field(default=0, nullable=False)
