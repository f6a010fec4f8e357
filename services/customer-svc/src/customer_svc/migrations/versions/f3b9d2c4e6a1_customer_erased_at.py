"""customers.erased_at: when the person's data was erased (was only the `@erased.invalid` email)

Revision ID: f3b9d2c4e6a1
Revises: c4a7e2d91b30
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from crm_common.erasure import ERASED_EMAIL_DOMAIN

revision: str = "f3b9d2c4e6a1"
down_revision: str | None = "c4a7e2d91b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain add_column (a batch on SQLite would recreate the table and drop its triggers).
    op.add_column("customers", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    # Customers erased before: recognised by their email; the erasure was their last change.
    customers = sa.table(
        "customers", sa.column("email", sa.String()), sa.column("updated_at"), sa.column("erased_at")
    )
    op.execute(
        customers.update()
        .where(customers.c.email.like(f"%@{ERASED_EMAIL_DOMAIN}"))
        .values(erased_at=customers.c.updated_at)
    )


def downgrade() -> None:
    op.drop_column("customers", "erased_at")
