"""tickets.external_id: unique, the key of batch upserts

Revision ID: 6712ff567b73
Revises: 105f0808d24a
Create Date: 2026-12-07 00:15:00
"""

from collections.abc import Sequence

from crm_common.batch import add_external_id_v1, drop_external_id_v1

revision: str = "6712ff567b73"
down_revision: str | None = "105f0808d24a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_external_id_v1("tickets")


def downgrade() -> None:
    drop_external_id_v1("tickets")
