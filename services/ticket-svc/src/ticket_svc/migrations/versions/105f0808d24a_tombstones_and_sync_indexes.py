"""tombstones (crm_common.changes) and (updated_at, id) indexes for incremental sync

Revision ID: 105f0808d24a
Revises: 0e2a07086931
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

from crm_common.changes import create_tombstones_v1, drop_tombstones_v1

revision: str = "105f0808d24a"
down_revision: str | None = "0e2a07086931"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNCED = ["tickets"]


def upgrade() -> None:
    create_tombstones_v1(sync_indexes=SYNCED)


def downgrade() -> None:
    drop_tombstones_v1(sync_indexes=SYNCED)
