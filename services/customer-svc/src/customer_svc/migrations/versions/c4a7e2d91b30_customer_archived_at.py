"""customers.archived_at: archived customers (crm_common.archive)

Revision ID: c4a7e2d91b30
Revises: 79afabcf5b49
Create Date: 2026-12-07 02:45:00
"""

from collections.abc import Sequence

from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "c4a7e2d91b30"
down_revision: str | None = "79afabcf5b49"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_archived_at_v1("customers")


def downgrade() -> None:
    drop_archived_at_v1("customers")
