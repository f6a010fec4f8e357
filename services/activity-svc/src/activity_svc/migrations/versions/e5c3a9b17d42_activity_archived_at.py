"""activities.archived_at: archived activities (crm_common.archive)

Revision ID: e5c3a9b17d42
Revises: 7c1e5a9b3d21
Create Date: 2026-12-07 03:10:00
"""

from collections.abc import Sequence

from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "e5c3a9b17d42"
down_revision: str | None = "7c1e5a9b3d21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_archived_at_v1("activities")


def downgrade() -> None:
    drop_archived_at_v1("activities")
