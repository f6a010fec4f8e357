"""event dead letters

Revision ID: 80d4d77f58c7
Revises: 9c2f4a7e1b30
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "80d4d77f58c7"
down_revision: str | None = "9c2f4a7e1b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
