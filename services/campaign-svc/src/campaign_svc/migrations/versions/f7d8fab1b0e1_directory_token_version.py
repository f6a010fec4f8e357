"""directory: users' token version

Revision ID: f7d8fab1b0e1
Revises: d9f347d96db4
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.directory import add_directory_token_version_v2, drop_directory_token_version_v2

revision: str = "f7d8fab1b0e1"
down_revision: str | None = "d9f347d96db4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_directory_token_version_v2()


def downgrade() -> None:
    drop_directory_token_version_v2()
