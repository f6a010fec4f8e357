"""opportunities.external_id: unique, the key of batch upserts

Revision ID: 65e6b1e492ac
Revises: d6bb2482de3b
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

from crm_common.batch import add_external_id_v1, drop_external_id_v1

revision: str = "65e6b1e492ac"
down_revision: str | None = "d6bb2482de3b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_external_id_v1("opportunities")


def downgrade() -> None:
    drop_external_id_v1("opportunities")
