"""tickets.archived_at: archived tickets (crm_common.archive)

Revision ID: f7a2c4e6b813
Revises: af4b8d2e6a54
Create Date: 2026-12-07 03:20:00
"""

from collections.abc import Sequence

from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "f7a2c4e6b813"
down_revision: str | None = "af4b8d2e6a54"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_archived_at_v1("tickets")


def downgrade() -> None:
    drop_archived_at_v1("tickets")
