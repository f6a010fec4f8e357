"""tombstones (crm_common.changes) and (updated_at, id) indexes for incremental sync

Revision ID: d6bb2482de3b
Revises: 4291d2d26635
Create Date: 2026-12-06 23:50:00
"""

from collections.abc import Sequence

from crm_common.changes import create_tombstones_v1, drop_tombstones_v1

revision: str = "d6bb2482de3b"
down_revision: str | None = "4291d2d26635"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SYNCED = ["opportunities", "invoices"]


def upgrade() -> None:
    create_tombstones_v1(sync_indexes=SYNCED)


def downgrade() -> None:
    drop_tombstones_v1(sync_indexes=SYNCED)
