"""customer_refs: the customer's owner (assignee, team) for record scopes (crm_common.customer_refs v2)

Revision ID: 8d2f6b0c4e32
Revises: 02fbac63db67
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from crm_common.customer_refs import create_customer_refs_v2, drop_customer_refs_v2

revision: str = "8d2f6b0c4e32"
down_revision: str | None = "02fbac63db67"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_customer_refs_v2()


def downgrade() -> None:
    drop_customer_refs_v2()
