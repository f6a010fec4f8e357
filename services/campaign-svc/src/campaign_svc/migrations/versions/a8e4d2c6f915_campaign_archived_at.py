"""campaigns.archived_at: archived campaigns (crm_common.archive)

Revision ID: a8e4d2c6f915
Revises: 8d2f6b0c4e32
Create Date: 2026-12-07 03:30:00
"""

from collections.abc import Sequence

from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "a8e4d2c6f915"
down_revision: str | None = "8d2f6b0c4e32"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_archived_at_v1("campaigns")


def downgrade() -> None:
    drop_archived_at_v1("campaigns")
