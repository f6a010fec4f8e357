"""one customer reference table (crm_common.customer_refs) instead of activity's own `customer_refs`

Revision ID: 2f6a9c4d8e15
Revises: 3df7e8108569
Create Date: 2026-12-06 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from crm_common.customer_refs import create_customer_refs_v1, drop_customer_refs_v1

revision: str = "2f6a9c4d8e15"
down_revision: str | None = "3df7e8108569"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARED = ("id", "customer_number", "full_name", "merged_into_id", "version", "updated_at")


def upgrade() -> None:
    create_customer_refs_v1(carry_from="customer_refs", columns={c: c for c in SHARED})


def downgrade() -> None:
    drop_customer_refs_v1(
        restore="customer_refs",
        columns=[
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("customer_number", sa.String(32)),
            sa.Column("full_name", sa.String(300)),
            sa.Column("merged_into_id", sa.Uuid()),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        ],
        copy={c: c for c in SHARED},
        index="ix_customer_refs_merged_into_id",
    )
