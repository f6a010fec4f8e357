"""one customer reference table (crm_common.customer_refs) instead of campaign's own `customers`

Revision ID: 4b8e1f6c9d27
Revises: c37ee94f2feb
Create Date: 2026-12-06 20:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from crm_common.customer_refs import create_customer_refs_v1, drop_customer_refs_v1

revision: str = "4b8e1f6c9d27"
down_revision: str | None = "c37ee94f2feb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHARED = ("id", "full_name", "status", "source_campaign_id", "merged_into_id")


def upgrade() -> None:
    create_customer_refs_v1(
        carry_from="customers",
        columns={
            **{c: c for c in SHARED},
            "version": "sequence",
            "updated_at": "coalesce(created_at, CURRENT_TIMESTAMP)",
        },
    )


def downgrade() -> None:
    drop_customer_refs_v1(
        restore="customers",
        columns=[
            sa.Column("id", sa.Uuid(), primary_key=True),
            sa.Column("full_name", sa.String(300)),
            sa.Column("status", sa.String(20)),
            sa.Column("source_campaign_id", sa.Uuid()),
            sa.Column("merged_into_id", sa.Uuid()),
            sa.Column("sequence", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True)),
        ],
        copy={**{c: c for c in SHARED}, "sequence": "version", "created_at": "updated_at"},
    )
