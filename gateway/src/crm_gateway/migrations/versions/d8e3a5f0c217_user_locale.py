"""users' language preference (the console's and the views' labels)

Revision ID: d8e3a5f0c217
Revises: a41f9c2d7e55
Create Date: 2026-12-07 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d8e3a5f0c217"
down_revision: str | None = "a41f9c2d7e55"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: a user who has not chosen gets their browser's Accept-Language. A plain
    # ADD COLUMN (no table rebuild on SQLite, so the users table's triggers stay).
    op.add_column("users", sa.Column("locale", sa.String(8), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "locale")
