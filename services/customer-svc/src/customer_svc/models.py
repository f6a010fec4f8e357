"""Customer tables (the seed's Customer and CustomerAddress), no schema name baked in."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from crm_common.archive import archived_at_field, archived_index
from crm_common.batch import external_id_index
from crm_common.changes import sync_index
from crm_common.models import (
    Field,
    SQLModel,
    id_field,
    json_field,
    money_field,
    new_registry,
    timestamp_field,
    updated_at_field,
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


# Mapped as the ORM's version counter: every UPDATE carries `WHERE version = :seen` and bumps it, so
# a write that raced past the If-Match check still fails (StaleDataError -> 412).
_customer_version = sa.Column("version", sa.Integer(), nullable=False)

# Substring search (`q`) runs over number, name, email and company joined in one expression, with a
# trigram GIN index on Postgres (service/query.py search_text; created by the migration, as are the
# other Postgres-only GIN indexes on tags and custom_fields).


class Customer(Base, table=True):
    __tablename__ = "customers"
    __table_args__ = (
        # Case-insensitive uniqueness enforced by the database, not by a racy check-then-insert.
        # A customer merged into another is a tombstone: its email no longer blocks anyone.
        sa.Index(
            "uq_customers_email_lower",
            sa.func.lower(sa.text("email")),
            unique=True,
            postgresql_where=sa.text("merged_into_id IS NULL"),
            sqlite_where=sa.text("merged_into_id IS NULL"),
        ),
        sa.Index("ix_customers_full_name", "full_name"),
        # Sorts of the customer list view (each with the id as tie-breaker is not needed: the
        # default order appends createdAt, id).
        sa.Index("ix_customers_email", "email"),
        sa.Index("ix_customers_type", "type"),
        sa.Index("ix_customers_total_value", "total_value"),
        sa.Index("ix_customers_last_contact_date", "last_contact_date"),
        sa.Index("ix_customers_status_created_at", "status", "created_at"),
        # The default order (created_at, id), walked backwards: see the list's count limit.
        sa.Index("ix_customers_created_at_id", "created_at", "id"),
        sa.Index("ix_customers_team_id", "team_id"),
        sa.Index("ix_customers_merged_into_id", "merged_into_id"),
        external_id_index("customers", live_only=True),
        sync_index("customers"),
        archived_index("customers"),
    )
    __mapper_args__ = {"version_id_col": _customer_version}

    id: uuid.UUID = id_field()
    customer_number: str = Field(sa_type=sa.String(32), unique=True, nullable=False)
    type: CustomerType = Field(default=CustomerType.INDIVIDUAL, sa_type=sa.String(16), nullable=False)
    first_name: str | None = Field(default=None, sa_type=sa.String(100))
    last_name: str | None = Field(default=None, sa_type=sa.String(100))
    full_name: str = Field(sa_type=sa.String(300), nullable=False)
    external_id: str | None = Field(default=None, sa_type=sa.String(255))
    title: str | None = Field(default=None, sa_type=sa.String(100))
    company_name: str | None = Field(default=None, sa_type=sa.String(300))
    industry: str | None = Field(default=None, sa_type=sa.String(100))
    employee_count: int | None = None
    annual_revenue: Decimal | None = money_field()
    email: str = Field(sa_type=sa.String(320), nullable=False)
    phone: str | None = Field(default=None, sa_type=sa.String(50))
    mobile: str | None = Field(default=None, sa_type=sa.String(50))
    website: str | None = Field(default=None, sa_type=sa.String(500))
    status: CustomerStatus = Field(default=CustomerStatus.LEAD, sa_type=sa.String(16), nullable=False)
    priority: Priority = Field(default=Priority.MEDIUM, sa_type=sa.String(16), nullable=False)
    source: str | None = Field(default=None, sa_type=sa.String(100))
    source_campaign_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    tags: list[str] = json_field(list)
    assigned_to_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid(), index=True)
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    # Open (totalValue) and won (lifetimeValue) opportunities in `value_currency`; every currency
    # the customer deals in is in `value_totals` ([{currency, totalValue, lifetimeValue}]).
    total_value: Decimal = money_field(Decimal("0.00"), nullable=False)
    lifetime_value: Decimal = money_field(Decimal("0.00"), nullable=False)
    value_currency: str = Field(default="USD", sa_type=sa.String(3), nullable=False)
    value_totals: list[dict] = json_field(list)
    last_contact_date: datetime | None = timestamp_field(nullable=True)
    next_contact_date: datetime | None = timestamp_field(nullable=True)
    custom_fields: dict = json_field(dict)
    notes: str | None = Field(default=None, sa_type=sa.Text())
    merged_into_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    archived_at: datetime | None = archived_at_field()
    # When the person's data was erased (GDPR art. 17); null for everyone else.
    erased_at: datetime | None = timestamp_field(nullable=True)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_customer_version)

    addresses: list["CustomerAddress"] = Relationship(
        sa_relationship_kwargs={"lazy": "raise", "cascade": "all, delete-orphan", "passive_deletes": True}
    )


class CustomerAddress(Base, table=True):
    __tablename__ = "customer_addresses"

    id: uuid.UUID = id_field()
    customer_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="customers.id", ondelete="CASCADE", index=True
    )
    type: AddressType = Field(default=AddressType.OTHER, sa_type=sa.String(16), nullable=False)
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


class CustomerOpportunity(Base, table=True):
    """The newest state seen of each opportunity (from pipeline-svc's `opportunity.*` events), keyed
    by opportunity id with its version (the event's `sequence`): the customer's totals are always
    recomputed from these rows, so redelivery and any delivery order give the same result."""

    __tablename__ = "customer_opportunities"

    opportunity_id: uuid.UUID = Field(primary_key=True, sa_type=sa.Uuid())
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
    status: str = Field(sa_type=sa.String(16), nullable=False)
    amount: Decimal = money_field(Decimal("0"), nullable=False)
    currency: str = Field(sa_type=sa.String(3), nullable=False)
    version: int = Field(nullable=False)
    updated_at: datetime = updated_at_field()


class CustomerValueTotal(Base, table=True):
    """The customer's open and won sums in one currency, one row per currency it deals in (the same
    figures as `customers.value_totals`, kept as rows so customers can be ranked per currency with
    an index: amounts in different currencies are never compared)."""

    __tablename__ = "customer_value_totals"
    __table_args__ = (
        sa.Index(
            "ix_customer_value_totals_won",
            "currency",
            sa.text("lifetime_value DESC"),
            postgresql_where=sa.text("lifetime_value > 0"),
            sqlite_where=sa.text("lifetime_value > 0"),
        ),
        sa.Index(
            "ix_customer_value_totals_open",
            "currency",
            sa.text("total_value DESC"),
            postgresql_where=sa.text("total_value > 0"),
            sqlite_where=sa.text("total_value > 0"),
        ),
    )

    customer_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="customers.id", ondelete="CASCADE", primary_key=True
    )
    currency: str = Field(sa_type=sa.String(3), primary_key=True)
    total_value: Decimal = money_field(Decimal("0.00"), nullable=False)
    lifetime_value: Decimal = money_field(Decimal("0.00"), nullable=False)


_segment_version = sa.Column("version", sa.Integer(), nullable=False)


class Segment(Base, table=True):
    """A saved customer filter, evaluated on demand (campaigns take their targets from it)."""

    __tablename__ = "segments"
    __table_args__ = (sa.Index("uq_segments_name_lower", sa.func.lower(sa.text("name")), unique=True),)
    __mapper_args__ = {"version_id_col": _segment_version}

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(200), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    filter: dict = json_field(dict)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_segment_version)
