"""customer manager: opportunities read model, segments, list indexes, idempotency keys

Revision ID: 8d31f521dff9
Revises: 7122c3b227d1
Create Date: 2026-11-25 15:00:20.518745
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from crm_common.idempotency import create_idempotency_table_v1, drop_idempotency_table_v1
from sqlalchemy.dialects import postgresql

revision: str = "8d31f521dff9"
down_revision: str | None = "7122c3b227d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _trigram_schema(bind) -> str | None:
    """The schema holding pg_trgm: already installed anywhere, else installed into `public` if this
    role may; None when it is not available (search then works without an index)."""
    found = bind.execute(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_trgm'"
        )
    ).scalar()
    if found:
        return found
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public"))
        return "public"
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm is not available (%s): customer search runs without trigram indexes", exc)
        return None


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"

    op.create_table(
        "customer_opportunities",
        sa.Column("opportunity_id", sa.Uuid(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("opportunity_id"),
    )
    op.create_index(
        "ix_customer_opportunities_customer_id", "customer_opportunities", ["customer_id"], unique=False
    )

    op.create_table(
        "segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("filter", JSON, nullable=False),
        sa.Column("created_by_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_segments_name_lower", "segments", [sa.text("lower(name)")], unique=True)

    # Plain ALTERs (no batch): recreating the table on SQLite would lose its expression index.
    op.add_column(
        "customers", sa.Column("value_currency", sa.String(length=3), nullable=False, server_default="USD")
    )
    op.add_column("customers", sa.Column("value_totals", JSON, nullable=False, server_default="[]"))

    # A merged customer is a tombstone: its email no longer blocks a new customer or an upsert.
    op.drop_index("uq_customers_email_lower", table_name="customers")
    op.create_index(
        "uq_customers_email_lower",
        "customers",
        [sa.text("lower(email)")],
        unique=True,
        postgresql_where=sa.text("merged_into_id IS NULL"),
        sqlite_where=sa.text("merged_into_id IS NULL"),
    )
    # (status, created_at) serves the status filter and the default order; the lone index goes.
    op.drop_index("ix_customers_status", table_name="customers")
    op.create_index("ix_customers_status_created_at", "customers", ["status", "created_at"])
    op.create_index("ix_customers_email", "customers", ["email"])
    op.create_index("ix_customers_type", "customers", ["type"])
    op.create_index("ix_customers_total_value", "customers", ["total_value"])
    op.create_index("ix_customers_last_contact_date", "customers", ["last_contact_date"])
    op.create_index("ix_customers_team_id", "customers", ["team_id"])
    op.create_index("ix_customers_merged_into_id", "customers", ["merged_into_id"])

    if postgres:
        # Tag filters (`tags ?| array[...]`) and segment custom-field equality (`@>`).
        op.create_index("ix_customers_tags", "customers", ["tags"], postgresql_using="gin")
        op.create_index(
            "ix_customers_custom_fields",
            "customers",
            ["custom_fields"],
            postgresql_using="gin",
            postgresql_ops={"custom_fields": "jsonb_path_ops"},
        )
        # "Most recently contacted first, never contacted last" without a sort.
        op.execute(
            "CREATE INDEX ix_customers_last_contact_desc ON customers (last_contact_date DESC NULLS LAST)"
        )
        # Substring search (`q`) over one expression (customer_svc.service.query.search_text); one
        # index, and none on lower(email) alone, which the planner would wrongly prefer to the
        # unique btree for email equality.
        trgm = _trigram_schema(bind)
        if trgm:
            op.execute(
                "CREATE INDEX ix_customers_search_trgm ON customers USING gin ("
                "lower(customer_number || chr(31) || full_name || chr(31) || email || chr(31) || "
                f"coalesce(company_name, '')) \"{trgm}\".gin_trgm_ops)"
            )

    create_idempotency_table_v1()


def downgrade() -> None:
    drop_idempotency_table_v1()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_customers_search_trgm")
        op.execute("DROP INDEX IF EXISTS ix_customers_last_contact_desc")
        op.drop_index("ix_customers_custom_fields", table_name="customers")
        op.drop_index("ix_customers_tags", table_name="customers")
    for name in (
        "ix_customers_merged_into_id",
        "ix_customers_team_id",
        "ix_customers_last_contact_date",
        "ix_customers_total_value",
        "ix_customers_type",
        "ix_customers_email",
        "ix_customers_status_created_at",
    ):
        op.drop_index(name, table_name="customers")
    op.create_index("ix_customers_status", "customers", ["status"])
    # On SQLite the batch recreates the table and drops expression indexes: recreate it after.
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("value_totals")
        batch_op.drop_column("value_currency")
    op.execute("DROP INDEX IF EXISTS uq_customers_email_lower")
    op.create_index("uq_customers_email_lower", "customers", [sa.text("lower(email)")], unique=True)
    op.drop_index("uq_segments_name_lower", table_name="segments")
    op.drop_table("segments")
    op.drop_index("ix_customer_opportunities_customer_id", table_name="customer_opportunities")
    op.drop_table("customer_opportunities")
