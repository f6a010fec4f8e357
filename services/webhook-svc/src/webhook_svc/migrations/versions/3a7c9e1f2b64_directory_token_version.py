"""directory: users' token version

Revision ID: 3a7c9e1f2b64
Revises: 5b1e0c7a9d42
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.directory import add_directory_token_version_v2, drop_directory_token_version_v2

revision: str = "3a7c9e1f2b64"
down_revision: str | None = "5b1e0c7a9d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_directory_token_version_v2()


def downgrade() -> None:
    drop_directory_token_version_v2()
