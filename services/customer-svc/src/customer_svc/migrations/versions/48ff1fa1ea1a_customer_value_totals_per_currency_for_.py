"""customer value totals per currency for rankings

Revision ID: 48ff1fa1ea1a
Revises: 8d31f521dff9
Create Date: 2026-11-25 16:50:42.101176
"""

from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

revision: str = "48ff1fa1ea1a"
down_revision: str | None = "8d31f521dff9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    table = op.create_table(
        "customer_value_totals",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("total_value", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("lifetime_value", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("customer_id", "currency"),
    )
    for name, column in (("won", "lifetime_value"), ("open", "total_value")):
        op.create_index(
            f"ix_customer_value_totals_{name}",
            "customer_value_totals",
            ["currency", sa.text(f"{column} DESC")],
            postgresql_where=sa.text(f"{column} > 0"),
            sqlite_where=sa.text(f"{column} > 0"),
        )
    _backfill(op.get_bind(), table)


def _backfill(bind, table: sa.Table) -> None:
    """Rows for the totals customers already have, from the opportunity states they were computed
    from (summed as Decimals here: SQLite has no exact decimal SUM)."""
    rows = bind.execute(
        sa.text(
            "SELECT o.customer_id, o.currency, o.status, o.amount FROM customer_opportunities o "
            "JOIN customers c ON c.id = o.customer_id WHERE o.status IN ('OPEN', 'WON')"
        ).columns(customer_id=sa.Uuid(), currency=sa.String(), status=sa.String(), amount=sa.Numeric(18, 2))
    )
    sums: dict[tuple, list[Decimal]] = {}
    for customer_id, currency, status, amount in rows:
        pair = sums.setdefault((customer_id, currency), [Decimal(0), Decimal(0)])
        pair[0 if status == "OPEN" else 1] += Decimal(amount)
    values = [
        {"customer_id": c, "currency": cur, "total_value": o, "lifetime_value": w}
        for (c, cur), (o, w) in sums.items()
    ]
    for start in range(0, len(values), BATCH):
        bind.execute(table.insert(), values[start : start + BATCH])


def downgrade() -> None:
    op.drop_table("customer_value_totals")
