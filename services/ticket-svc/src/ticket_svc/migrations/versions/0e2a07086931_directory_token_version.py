"""directory: users' token version

Revision ID: 0e2a07086931
Revises: f637866e5235
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.directory import add_directory_token_version_v2, drop_directory_token_version_v2

revision: str = "0e2a07086931"
down_revision: str | None = "f637866e5235"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_directory_token_version_v2()


def downgrade() -> None:
    drop_directory_token_version_v2()
