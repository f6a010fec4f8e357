"""event dead letters

Revision ID: 91c372f642dc
Revises: 2f6a9c4d8e15
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "91c372f642dc"
down_revision: str | None = "2f6a9c4d8e15"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
