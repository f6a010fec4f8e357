"""event dead letters

Revision ID: f637866e5235
Revises: 7d3e5b8f2a41
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "f637866e5235"
down_revision: str | None = "7d3e5b8f2a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
