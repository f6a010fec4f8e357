"""tombstones (crm_common.changes) and (updated_at, id) indexes for incremental sync

Revision ID: 07040053cf23
Revises: d7234af02b36
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

from crm_common.changes import create_tombstones_v1, drop_tombstones_v1

revision: str = "07040053cf23"
down_revision: str | None = "d7234af02b36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNCED = ["activities"]


def upgrade() -> None:
    create_tombstones_v1(sync_indexes=SYNCED)


def downgrade() -> None:
    drop_tombstones_v1(sync_indexes=SYNCED)
