"""OAuth2 clients (client credentials grant)

Revision ID: a3f1c9d27b40
Revises: 5e0c2b7a9d13
Create Date: 2026-12-06 23:45:00
"""

from collections.abc import Sequence

import crm_common.models
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a3f1c9d27b40"
down_revision: str | None = "5e0c2b7a9d13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "permissions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("created_at", crm_common.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm_common.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", crm_common.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id"),
    )
    op.create_index("ix_oauth_clients_created_by", "oauth_clients", ["created_by"])


def downgrade() -> None:
    op.drop_index("ix_oauth_clients_created_by", table_name="oauth_clients")
    op.drop_table("oauth_clients")
