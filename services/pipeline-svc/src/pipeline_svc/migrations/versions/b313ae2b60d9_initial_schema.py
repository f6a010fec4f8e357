"""initial schema

Revision ID: b313ae2b60d9
Revises:
Create Date: 2026-11-25 14:26:08.801151
"""

from collections.abc import Sequence

from crm_common.events.tables import create_event_tables_v1, drop_event_tables_v1

revision: str = "b313ae2b60d9"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_event_tables_v1()


def downgrade() -> None:
    drop_event_tables_v1()
