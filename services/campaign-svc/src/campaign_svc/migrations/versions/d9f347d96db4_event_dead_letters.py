"""event dead letters

Revision ID: d9f347d96db4
Revises: 4b8e1f6c9d27
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "d9f347d96db4"
down_revision: str | None = "4b8e1f6c9d27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
