"""event dead letters

Revision ID: b2aec28ed253
Revises: 48ff1fa1ea1a
Create Date: 2026-12-06 21:00:00
"""

from collections.abc import Sequence

from crm_common.events.dead_letters import create_dead_letter_table_v1, drop_dead_letter_table_v1

revision: str = "b2aec28ed253"
down_revision: str | None = "48ff1fa1ea1a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_dead_letter_table_v1()


def downgrade() -> None:
    drop_dead_letter_table_v1()
