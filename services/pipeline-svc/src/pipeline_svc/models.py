"""pipeline-svc tables: the seed's OpportunityStage, Opportunity, Product and OpportunityProduct, plus
Invoice (with its lines), the invoice number counter, and the small read model of customers kept from
customer-svc's events. No schema name baked in."""

import uuid
from datetime import date, datetime
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
    version_column,
)
from sqlmodel import Relationship

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata


class OpportunityStatus(StrEnum):
    OPEN = "OPEN"
    WON = "WON"
    LOST = "LOST"
    CANCELLED = "CANCELLED"


class ProductStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    DISCONTINUED = "DISCONTINUED"


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    ISSUED = "ISSUED"
    PAID = "PAID"
    VOID = "VOID"


_stage_version = version_column()


class OpportunityStage(Base, table=True):
    __tablename__ = "opportunity_stages"
    __table_args__ = (
        sa.Index("uq_opportunity_stages_name_lower", sa.func.lower(sa.text("name")), unique=True),
    )
    __mapper_args__ = {"version_id_col": _stage_version}

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(100), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.String(500))
    probability: int = Field(default=0, nullable=False)
    sort_order: int = Field(nullable=False, index=True)
    color: str | None = Field(default=None, sa_type=sa.String(32))
    is_active: bool = Field(default=True, nullable=False, index=True)
    is_won: bool = Field(default=False, nullable=False)
    is_lost: bool = Field(default=False, nullable=False)
    requirements: list[str] = json_field(list)
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_stage_version)


class StageTotal(Base, table=True):
    """How many opportunities each stage holds and their amount, per currency, kept by database
    triggers on `opportunities` (migration 2e40278a31c1) whatever writes them: the unfiltered board and
    the dashboard read these few rows instead of summing every opportunity (0.2 s at a million).
    A (stage, currency) is spread over several `slot` rows and each write adds to a random one, so
    concurrent writers in one stage rarely wait for each other; readers add the slots up. Amounts are
    whole cents, exact on SQLite too."""

    __tablename__ = "stage_totals"

    stage_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="opportunity_stages.id", ondelete="CASCADE", primary_key=True
    )
    currency: str = Field(sa_type=sa.String(3), primary_key=True)
    slot: int = Field(sa_type=sa.SmallInteger(), primary_key=True)
    opportunities: int = Field(sa_type=sa.BigInteger(), nullable=False)
    amount_cents: int = Field(sa_type=sa.BigInteger(), nullable=False)


_opportunity_version = version_column()


class Opportunity(Base, table=True):
    __tablename__ = "opportunities"
    __table_args__ = (
        external_id_index("opportunities"),
        sync_index("opportunities"),
        archived_index("opportunities"),
        # The forecast (open opportunities closing in a period, by owner, team or all) and the board (the
        # first cards of each stage, soonest close first, and per-currency sums per stage) read these. On
        # Postgres the INCLUDE columns let both be answered from the index alone (index-only scans);
        # `archived_at` among them keeps it so with the filter on live opportunities.
        sa.Index(
            "ix_opportunities_owner_status_close",
            "owner_id",
            "status",
            "expected_close_date",
            postgresql_include=["currency", "stage_id", "amount", "probability", "archived_at"],
        ),
        sa.Index(
            "ix_opportunities_status_close",
            "status",
            "expected_close_date",
            postgresql_include=["currency", "stage_id", "amount", "probability", "team_id", "archived_at"],
        ),
        sa.Index(
            "ix_opportunities_owner_stage_close",
            "owner_id",
            "stage_id",
            "expected_close_date",
            postgresql_include=["currency", "amount", "archived_at"],
        ),
        sa.Index(
            "ix_opportunities_team_stage_close",
            "team_id",
            "stage_id",
            "expected_close_date",
            postgresql_include=["currency", "amount", "archived_at"],
        ),
        sa.Index(
            "ix_opportunities_stage_close",
            "stage_id",
            "expected_close_date",
            postgresql_include=["currency", "amount", "archived_at"],
        ),
    )
    __mapper_args__ = {"version_id_col": _opportunity_version}

    id: uuid.UUID = id_field()
    external_id: str | None = Field(default=None, sa_type=sa.String(255))
    title: str = Field(sa_type=sa.String(300), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
    amount: Decimal = money_field(Decimal("0"), nullable=False)
    # True once a client set the amount by hand: line item changes then leave it alone.
    amount_manual: bool = Field(default=False, nullable=False)
    currency: str = Field(default="USD", sa_type=sa.String(3), nullable=False)
    probability: int = Field(default=0, nullable=False)
    expected_close_date: date | None = Field(default=None, sa_type=sa.Date())
    actual_close_date: date | None = Field(default=None, sa_type=sa.Date())
    stage_id: uuid.UUID = Field(sa_type=sa.Uuid(), foreign_key="opportunity_stages.id", nullable=False)
    status: OpportunityStatus = Field(default=OpportunityStatus.OPEN, sa_type=sa.String(16), nullable=False)
    lost_reason: str | None = Field(default=None, sa_type=sa.String(500))
    owner_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False)
    team_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    competitors: list = json_field(list)
    custom_fields: dict = json_field(dict)
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    archived_at: datetime | None = archived_at_field()
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_opportunity_version)

    line_items: list["OpportunityProduct"] = Relationship(
        sa_relationship_kwargs={
            "lazy": "raise",
            "cascade": "all, delete-orphan",
            "passive_deletes": True,
            "order_by": "OpportunityProduct.created_at",
        }
    )


_product_version = version_column()


class Product(Base, table=True):
    __tablename__ = "products"
    __table_args__ = (sa.Index("uq_products_code_lower", sa.func.lower(sa.text("code")), unique=True),)
    __mapper_args__ = {"version_id_col": _product_version}

    id: uuid.UUID = id_field()
    name: str = Field(sa_type=sa.String(200), nullable=False, index=True)
    code: str = Field(sa_type=sa.String(64), nullable=False)
    description: str | None = Field(default=None, sa_type=sa.Text())
    category: str | None = Field(default=None, sa_type=sa.String(100), index=True)
    price: Decimal = money_field(nullable=False)
    cost: Decimal | None = money_field()
    currency: str = Field(default="USD", sa_type=sa.String(3), nullable=False)
    status: ProductStatus = Field(
        default=ProductStatus.ACTIVE, sa_type=sa.String(16), nullable=False, index=True
    )
    custom_fields: dict = json_field(dict)
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_product_version)


class OpportunityProduct(Base, table=True):
    """A line item: one row per (opportunity, product). Its money is in the opportunity's currency."""

    __tablename__ = "opportunity_products"
    __table_args__ = (sa.UniqueConstraint("opportunity_id", "product_id", name="uq_opportunity_products"),)

    id: uuid.UUID = id_field()
    opportunity_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="opportunities.id", ondelete="CASCADE", nullable=False
    )
    product_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="products.id", ondelete="RESTRICT", nullable=False, index=True
    )
    description: str | None = Field(default=None, sa_type=sa.String(500))
    quantity: Decimal = Field(sa_type=sa.Numeric(12, 2), nullable=False)
    unit_price: Decimal = money_field(nullable=False)
    # Percent off, 0-100.
    discount: Decimal = Field(default=Decimal("0"), sa_type=sa.Numeric(5, 2), nullable=False)
    line_total: Decimal = money_field(nullable=False)
    created_at: datetime = timestamp_field()
    updated_at: datetime = updated_at_field()

    product: Product = Relationship(sa_relationship_kwargs={"lazy": "raise"})


_invoice_version = version_column()


class Invoice(Base, table=True):
    __tablename__ = "invoices"
    __table_args__ = (sync_index("invoices"),)
    __mapper_args__ = {"version_id_col": _invoice_version}

    id: uuid.UUID = id_field()
    invoice_number: str = Field(sa_type=sa.String(32), unique=True, nullable=False)
    customer_id: uuid.UUID = Field(sa_type=sa.Uuid(), nullable=False, index=True)
    opportunity_id: uuid.UUID | None = Field(
        default=None, sa_type=sa.Uuid(), foreign_key="opportunities.id", index=True
    )
    status: InvoiceStatus = Field(
        default=InvoiceStatus.DRAFT, sa_type=sa.String(16), nullable=False, index=True
    )
    currency: str = Field(sa_type=sa.String(3), nullable=False)
    total: Decimal = money_field(nullable=False)
    issue_date: date | None = Field(default=None, sa_type=sa.Date())
    due_date: date | None = Field(default=None, sa_type=sa.Date())
    paid_date: date | None = Field(default=None, sa_type=sa.Date())
    notes: str | None = Field(default=None, sa_type=sa.Text())
    created_by_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    created_at: datetime = timestamp_field(index=True)
    updated_at: datetime = updated_at_field()
    version: int = Field(default=None, sa_column=_invoice_version)

    lines: list["InvoiceLine"] = Relationship(
        sa_relationship_kwargs={
            "lazy": "raise",
            "cascade": "all, delete-orphan",
            "passive_deletes": True,
            "order_by": "InvoiceLine.position",
        }
    )


class InvoiceLine(Base, table=True):
    __tablename__ = "invoice_lines"

    id: uuid.UUID = id_field()
    invoice_id: uuid.UUID = Field(
        sa_type=sa.Uuid(), foreign_key="invoices.id", ondelete="CASCADE", nullable=False, index=True
    )
    position: int = Field(nullable=False)
    product_id: uuid.UUID | None = Field(default=None, sa_type=sa.Uuid())
    description: str = Field(sa_type=sa.String(500), nullable=False)
    quantity: Decimal = Field(sa_type=sa.Numeric(12, 2), nullable=False)
    unit_price: Decimal = money_field(nullable=False)
    discount: Decimal = Field(default=Decimal("0"), sa_type=sa.Numeric(5, 2), nullable=False)
    line_total: Decimal = money_field(nullable=False)


class InvoiceNumberCounter(Base, table=True):
    """One row per year; incremented under a row lock, so numbers are consecutive and never reused."""

    __tablename__ = "invoice_number_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_value: int = Field(default=0, nullable=False)
