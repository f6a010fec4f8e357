"""ordered by aggregate: the subscription flag and the index that finds an aggregate's earlier deliveries

Revision ID: 8e4f1a2b3c5d
Revises: 7c2d4e9a1b30
Create Date: 2026-12-07 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e4f1a2b3c5d"
down_revision: str | None = "7c2d4e9a1b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_subscriptions",
        sa.Column("ordered_by_aggregate", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_webhook_deliveries_aggregate", "webhook_deliveries", ["subscription_id", "subject", "state"]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_aggregate", table_name="webhook_deliveries")
    op.drop_column("webhook_subscriptions", "ordered_by_aggregate")
