"""initial schema

Revision ID: c6f448fe5f7d
Revises:
Create Date: 2026-11-25 14:26:01.622852
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from crm_common.events.tables import create_event_tables_v1, drop_event_tables_v1
from sqlalchemy.dialects import postgresql

revision: str = "c6f448fe5f7d"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column(
            "roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    create_event_tables_v1()


def downgrade() -> None:
    drop_event_tables_v1()
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
