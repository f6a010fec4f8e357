"""opportunities.archived_at: archived opportunities (crm_common.archive)

Revision ID: d1b8f0a3c6e2
Revises: 65e6b1e492ac
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "d1b8f0a3c6e2"
down_revision: str | None = "65e6b1e492ac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain add_column: the stage totals' triggers on this table stay (a batch alter drops them).
    add_archived_at_v1("opportunities")


def downgrade() -> None:
    drop_archived_at_v1("opportunities")
