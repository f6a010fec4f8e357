"""directory: users' token version

Revision ID: b1abcd220e2e
Revises: b2aec28ed253
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.directory import add_directory_token_version_v2, drop_directory_token_version_v2

revision: str = "b1abcd220e2e"
down_revision: str | None = "b2aec28ed253"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_directory_token_version_v2()


def downgrade() -> None:
    drop_directory_token_version_v2()
