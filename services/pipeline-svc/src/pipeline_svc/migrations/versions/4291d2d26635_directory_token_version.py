"""directory: users' token version

Revision ID: 4291d2d26635
Revises: 80d4d77f58c7
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.directory import add_directory_token_version_v2, drop_directory_token_version_v2

revision: str = "4291d2d26635"
down_revision: str | None = "80d4d77f58c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_directory_token_version_v2()


def downgrade() -> None:
    drop_directory_token_version_v2()
