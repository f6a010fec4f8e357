"""customers.external_id: unique among live customers, the key of batch upserts

Revision ID: 79afabcf5b49
Revises: e71d3fbf3566
Create Date: 2026-12-07 00:05:00
"""

from collections.abc import Sequence

from crm_common.batch import add_external_id_v1, drop_external_id_v1

revision: str = "79afabcf5b49"
down_revision: str | None = "e71d3fbf3566"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_external_id_v1("customers", live_only=True)


def downgrade() -> None:
    drop_external_id_v1("customers")
