"""initial schema

Revision ID: a21bf62aef78
Revises:
Create Date: 2026-11-25 14:26:13.772521
"""

from collections.abc import Sequence

from crm_common.events.tables import create_event_tables_v1, drop_event_tables_v1

revision: str = "a21bf62aef78"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_event_tables_v1()


def downgrade() -> None:
    drop_event_tables_v1()
