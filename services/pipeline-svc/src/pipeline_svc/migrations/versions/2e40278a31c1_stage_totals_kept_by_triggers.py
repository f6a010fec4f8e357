"""stage totals kept by triggers

Revision ID: 2e40278a31c1
Revises: 5a7c1e9d3b20
Create Date: 2026-11-25 17:07:07.031050

`stage_totals` (see models.StageTotal) follows every insert, delete and change of stage, currency or
amount of an opportunity through triggers, so no code path (the API, a data fix in SQL, a bulk load)
can leave it behind. Postgres spreads each (stage, currency) over SLOTS rows; SQLite has one writer
at a time and uses slot 0.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2e40278a31c1"
down_revision: str | None = "5a7c1e9d3b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 8

# Adds the grouped `deltas` (stage_id, currency, n, cents) of one statement to a random slot, in
# one key order, so two writers that drew the same slot wait for each other instead of deadlocking.
_APPLY = """
    INSERT INTO stage_totals AS t (stage_id, currency, slot, opportunities, amount_cents)
    SELECT stage_id, currency, s, sum(n), sum(cents) FROM deltas
    GROUP BY stage_id, currency HAVING sum(n) <> 0 OR sum(cents) <> 0
    ORDER BY stage_id, currency
    ON CONFLICT (stage_id, currency, slot) DO UPDATE
    SET opportunities = t.opportunities + excluded.opportunities,
        amount_cents = t.amount_cents + excluded.amount_cents;
"""

POSTGRES = [
    # Statement-level, with transition tables: a bulk INSERT ... SELECT of a million rows costs one
    # grouped upsert, not a million. `SET search_path FROM CURRENT`: the function finds stage_totals
    # in this service's schema whatever the search_path of the session writing the opportunities.
    f"""
    CREATE FUNCTION stage_totals_follow() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    DECLARE
        s smallint := floor(random() * {SLOTS})::smallint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            WITH deltas AS (
                SELECT stage_id, currency, 1 AS n, round(amount * 100)::bigint AS cents FROM new_rows
            ) {_APPLY}
        ELSIF TG_OP = 'DELETE' THEN
            WITH deltas AS (
                SELECT stage_id, currency, -1 AS n, -round(amount * 100)::bigint AS cents FROM old_rows
            ) {_APPLY}
        ELSE
            WITH changed AS (
                SELECT o.stage_id AS old_stage, o.currency AS old_currency, o.amount AS old_amount,
                       n.stage_id, n.currency, n.amount
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE (o.stage_id, o.currency, o.amount) IS DISTINCT FROM (n.stage_id, n.currency, n.amount)
            ), deltas AS (
                SELECT stage_id, currency, 1 AS n, round(amount * 100)::bigint AS cents FROM changed
                UNION ALL
                SELECT old_stage, old_currency, -1, -round(old_amount * 100)::bigint FROM changed
            ) {_APPLY}
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER stage_totals_on_insert AFTER INSERT ON opportunities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION stage_totals_follow()
    """,
    """
    CREATE TRIGGER stage_totals_on_update AFTER UPDATE ON opportunities
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION stage_totals_follow()
    """,
    """
    CREATE TRIGGER stage_totals_on_delete AFTER DELETE ON opportunities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION stage_totals_follow()
    """,
]


def _sqlite_add(row: str, sign: str) -> str:
    return f"""
        INSERT INTO stage_totals (stage_id, currency, slot, opportunities, amount_cents)
        VALUES ({row}.stage_id, {row}.currency, 0, {sign}1, {sign}CAST(round({row}.amount * 100) AS INTEGER))
        ON CONFLICT (stage_id, currency, slot) DO UPDATE
        SET opportunities = opportunities + excluded.opportunities,
            amount_cents = amount_cents + excluded.amount_cents;
    """


SQLITE = [
    f"CREATE TRIGGER stage_totals_on_insert AFTER INSERT ON opportunities BEGIN {_sqlite_add('NEW', '')} END",
    f"CREATE TRIGGER stage_totals_on_delete AFTER DELETE ON opportunities BEGIN {_sqlite_add('OLD', '-')} END",
    f"""
    CREATE TRIGGER stage_totals_on_update AFTER UPDATE OF stage_id, currency, amount ON opportunities
    WHEN OLD.stage_id IS NOT NEW.stage_id OR OLD.currency IS NOT NEW.currency OR OLD.amount IS NOT NEW.amount
    BEGIN {_sqlite_add("OLD", "-")} {_sqlite_add("NEW", "")} END
    """,
]


def upgrade() -> None:
    op.create_table(
        "stage_totals",
        sa.Column("stage_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("slot", sa.SmallInteger(), nullable=False),
        sa.Column("opportunities", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["stage_id"], ["opportunity_stages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("stage_id", "currency", "slot"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Writers wait until the triggers and the backfill below commit together: no opportunity
        # written meanwhile is counted twice or not at all.
        op.execute("LOCK TABLE opportunities IN SHARE ROW EXCLUSIVE MODE")
    for statement in POSTGRES if postgres else SQLITE:
        op.execute(statement)
    op.execute(
        "INSERT INTO stage_totals (stage_id, currency, slot, opportunities, amount_cents) "
        "SELECT stage_id, currency, 0, count(*), CAST(sum(round(amount * 100)) AS BIGINT) "
        "FROM opportunities GROUP BY stage_id, currency"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("stage_totals_on_insert", "stage_totals_on_update", "stage_totals_on_delete"):
            op.execute(f"DROP TRIGGER {name} ON opportunities")
        op.execute("DROP FUNCTION stage_totals_follow()")
    else:
        for name in ("stage_totals_on_insert", "stage_totals_on_delete", "stage_totals_on_update"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("stage_totals")
