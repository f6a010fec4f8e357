"""record scopes: subscriptions' captured scopes, skipped deliveries, record owners, user access

Revision ID: 7c2d4e9a1b30
Revises: 3a7c9e1f2b64
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7c2d4e9a1b30"
down_revision: str | None = "3a7c9e1f2b64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # Plain add_column (no batch on SQLite): existing subscriptions keep null = made before scopes.
    op.add_column("webhook_subscriptions", sa.Column("record_scopes", JSON, nullable=True))
    op.add_column("webhook_deliveries", sa.Column("skip_reason", sa.String(64), nullable=True))
    op.create_table(
        "webhook_record_owners",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("record_id", sa.Uuid(), primary_key=True),
        sa.Column("owner_ids", JSON, nullable=False),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhook_user_access",
        sa.Column("user_id", sa.Uuid(), primary_key=True),
        sa.Column("read_scopes", JSON, nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_user_access")
    op.drop_table("webhook_record_owners")
    op.drop_column("webhook_deliveries", "skip_reason")
    op.drop_column("webhook_subscriptions", "record_scopes")
