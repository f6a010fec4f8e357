"""customer_refs: the customer's owner (assignee, team) for record scopes (crm_common.customer_refs v2)

Revision ID: 7c1e5a9b3d21
Revises: a0d1c8e9fa63
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from crm_common.customer_refs import create_customer_refs_v2, drop_customer_refs_v2

revision: str = "7c1e5a9b3d21"
down_revision: str | None = "a0d1c8e9fa63"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_customer_refs_v2()


def downgrade() -> None:
    drop_customer_refs_v2()
