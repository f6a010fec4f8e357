"""one customer reference table (crm_common.customer_refs) instead of pipeline's own `customers`

Revision ID: 9c2f4a7e1b30
Revises: 2e40278a31c1
Create Date: 2026-12-06 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from crm_common.customer_refs import create_customer_refs_v1, drop_customer_refs_v1

revision: str = "9c2f4a7e1b30"
down_revision: str | None = "2e40278a31c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARED = ("id", "customer_number", "full_name", "status", "merged_into_id", "version", "updated_at")


def upgrade() -> None:
    create_customer_refs_v1(carry_from="customers", columns={c: c for c in SHARED})


def downgrade() -> None:
    drop_customer_refs_v1(
        restore="customers",
        columns=[
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("customer_number", sa.String(32), nullable=False),
            sa.Column("full_name", sa.String(300), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("merged_into_id", sa.Uuid()),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ],
        copy={
            **{c: c for c in SHARED},
            "customer_number": "coalesce(customer_number, '')",
            "full_name": "coalesce(full_name, '')",
            "status": "coalesce(status, 'CUSTOMER')",
        },
    )
