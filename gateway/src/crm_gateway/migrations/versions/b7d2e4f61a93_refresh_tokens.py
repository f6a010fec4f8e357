"""refresh tokens (rotating, per family)

Revision ID: b7d2e4f61a93
Revises: a3f1c9d27b40
Create Date: 2026-12-07 00:00:00
"""

from collections.abc import Sequence

import crm_common.models
import sqlalchemy as sa
from alembic import op

revision: str = "b7d2e4f61a93"
down_revision: str | None = "a3f1c9d27b40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", crm_common.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm_common.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", crm_common.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", crm_common.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_expires_at", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
