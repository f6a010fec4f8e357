"""customer_refs: the customer's owner (assignee, team) for record scopes (crm_common.customer_refs v2)

Revision ID: 9e3a7c1d5f43
Revises: 65e6b1e492ac
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from crm_common.customer_refs import create_customer_refs_v2, drop_customer_refs_v2

revision: str = "9e3a7c1d5f43"
down_revision: str | None = "65e6b1e492ac"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_customer_refs_v2()


def downgrade() -> None:
    drop_customer_refs_v2()
