"""customers (created_at, id) index: the list's default order, walked to its page without sorting

Revision ID: a6e1c0d3f2b8
Revises: f3b9d2c4e6a1
Create Date: 2026-12-07 15:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a6e1c0d3f2b8"
down_revision: str | None = "f3b9d2c4e6a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The default order is (created_at DESC, id DESC): with the id in the index, a search's first
    # page reads the newest rows in order and stops at 25 matches, instead of sorting every match.
    op.create_index("ix_customers_created_at_id", "customers", ["created_at", "id"])
    op.drop_index("ix_customers_created_at", table_name="customers")


def downgrade() -> None:
    op.create_index("ix_customers_created_at", "customers", ["created_at"])
    op.drop_index("ix_customers_created_at_id", table_name="customers")
