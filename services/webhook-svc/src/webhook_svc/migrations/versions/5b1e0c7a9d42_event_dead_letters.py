"""event dead letters

Revision ID: 5b1e0c7a9d42
Revises: 4de68631f035
Create Date: 2026-12-06 21:50:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "5b1e0c7a9d42"
down_revision: str | None = "4de68631f035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
