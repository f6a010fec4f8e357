"""tombstones (crm_common.changes) and (updated_at, id) indexes for incremental sync

Revision ID: e71d3fbf3566
Revises: b1abcd220e2e
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

from crm_common.changes import create_tombstones_v1, drop_tombstones_v1

revision: str = "e71d3fbf3566"
down_revision: str | None = "b1abcd220e2e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNCED = ["customers"]


def upgrade() -> None:
    create_tombstones_v1(sync_indexes=SYNCED)


def downgrade() -> None:
    drop_tombstones_v1(sync_indexes=SYNCED)
