"""activities.external_id: unique, the key of batch upserts

Revision ID: a0d1c8e9fa63
Revises: 07040053cf23
Create Date: 2026-12-07 00:20:00
"""

from collections.abc import Sequence

from crm_common.batch import add_external_id_v1, drop_external_id_v1

revision: str = "a0d1c8e9fa63"
down_revision: str | None = "07040053cf23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_external_id_v1("activities")


def downgrade() -> None:
    drop_external_id_v1("activities")
