"""user and team directory

Revision ID: 7122c3b227d1
Revises: d7413814d36a
Create Date: 2026-11-25 15:00:00
"""

from collections.abc import Sequence

from crm_common.directory import create_directory_tables_v1, drop_directory_tables_v1

revision: str = "7122c3b227d1"
down_revision: str | None = "d7413814d36a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_directory_tables_v1()


def downgrade() -> None:
    drop_directory_tables_v1()
