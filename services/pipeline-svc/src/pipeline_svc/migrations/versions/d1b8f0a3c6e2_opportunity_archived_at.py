"""opportunities.archived_at: archived opportunities (crm_common.archive)

Revision ID: d1b8f0a3c6e2
Revises: 9e3a7c1d5f43
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from alembic import op
from crm_common.archive import add_archived_at_v1, drop_archived_at_v1

revision: str = "d1b8f0a3c6e2"
down_revision: str | None = "9e3a7c1d5f43"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The forecast's and the board's indexes, answered from the index alone on Postgres (INCLUDE): with
# `archived_at` included they stay so under the filter on live opportunities. (SQLite has no INCLUDE.)
COVERING = {
    "ix_opportunities_owner_status_close": (
        ["owner_id", "status", "expected_close_date"],
        ["currency", "stage_id", "amount", "probability"],
    ),
    "ix_opportunities_status_close": (
        ["status", "expected_close_date"],
        ["currency", "stage_id", "amount", "probability", "team_id"],
    ),
    "ix_opportunities_owner_stage_close": (
        ["owner_id", "stage_id", "expected_close_date"],
        ["currency", "amount"],
    ),
    "ix_opportunities_team_stage_close": (
        ["team_id", "stage_id", "expected_close_date"],
        ["currency", "amount"],
    ),
    "ix_opportunities_stage_close": (["stage_id", "expected_close_date"], ["currency", "amount"]),
}


def _covering(extra: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (columns, include) in COVERING.items():
        op.drop_index(name, table_name="opportunities")
        op.create_index(name, "opportunities", columns, postgresql_include=include + extra)


def upgrade() -> None:
    # A plain add_column: the stage totals' triggers on this table stay (a batch alter drops them).
    add_archived_at_v1("opportunities")
    _covering(["archived_at"])


def downgrade() -> None:
    _covering([])
    drop_archived_at_v1("opportunities")
