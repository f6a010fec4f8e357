"""ticket metrics kept by triggers (ticket_svc.service.metric_totals)

Revision ID: b5c9e3f7a1d2
Revises: f7a2c4e6b813
Create Date: 2026-12-07 03:00:00

Every insert, delete and change of a watched column of a ticket appends its signed changes to
`ticket_totals_delta` and `ticket_time_delta` through triggers (Postgres: statement-level over
transition tables, so a bulk load costs one grouped insert; SQLite: row triggers); the service folds
them into `ticket_totals`, `ticket_time_counts` and `ticket_time_buckets`, which are backfilled here
from the tickets. The SQL comes from ticket_svc.service.metric_totals, frozen with this revision.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from ticket_svc.service.metric_totals import (
    BUCKET,
    COUNTED,
    FIRST_RESPONSE,
    RESOLUTION,
    WATCHED,
    counted_sql,
    team_key_sql,
)

revision: str = "b5c9e3f7a1d2"
down_revision: str | None = "f7a2c4e6b813"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMES = ", ".join(COUNTED)
TRIGGERS = ("ticket_totals_on_insert", "ticket_totals_on_update", "ticket_totals_on_delete")
TABLES = (
    "ticket_totals_delta",
    "ticket_time_delta",
    "ticket_time_buckets",
    "ticket_time_counts",
    "ticket_totals",
)


def _totals_select(source: str, r: str, dialect: str, sign: str, grouped: bool) -> str:
    """SELECT team_key, sum(sign * value)... over `source` (rows prefixed `r`)."""
    key = team_key_sql(r, dialect)
    if not grouped:  # one row (a SQLite row trigger)
        return f"SELECT {key}, " + ", ".join(f"{sign} * ({e})" for e in counted_sql(r).values())
    sums = ", ".join(f"sum({sign} * ({e}))" for e in counted_sql(r).values())
    return f"SELECT {key}, {sums} FROM {source} GROUP BY {key}"


def _times_select(source: str, r: str, dialect: str, sign: str) -> str:
    key = team_key_sql(r, dialect)
    return (
        f"SELECT {key} AS team_key, {FIRST_RESPONSE} AS metric, {r}response_time AS value, {sign} AS n "
        f"FROM {source} WHERE {r}response_time IS NOT NULL UNION ALL "
        f"SELECT {key}, {RESOLUTION}, {r}resolution_time, {sign} FROM {source} WHERE {r}resolution_time IS NOT NULL"
    )


def _append(deltas_select: str, times_select: str) -> str:
    return (
        f"INSERT INTO ticket_totals_delta (team_key, {NAMES}) {deltas_select};\n"
        f"INSERT INTO ticket_time_delta (team_key, metric, value, n) "
        f"SELECT team_key, metric, value, sum(n) FROM ({times_select}) x GROUP BY 1, 2, 3 HAVING sum(n) <> 0;"
    )


def _postgres() -> list[str]:
    def apply(deltas: str) -> str:
        totals = _totals_select("deltas", "", "postgresql", "sign", grouped=True)
        times = _times_select("deltas", "", "postgresql", "sign")
        first, second = _append(totals, times).split("\n")
        return f"WITH deltas AS ({deltas}) {first}\n WITH deltas AS ({deltas}) {second}"

    watched = ", ".join(WATCHED)
    changed = (
        "SELECT o.id FROM old_rows o JOIN new_rows n ON n.id = o.id "
        f"WHERE ({', '.join('o.' + c for c in WATCHED)}) IS DISTINCT FROM ({', '.join('n.' + c for c in WATCHED)})"
    )
    on_update = (
        f"SELECT 1 AS sign, {watched} FROM new_rows WHERE id IN ({changed}) "
        f"UNION ALL SELECT -1, {watched} FROM old_rows WHERE id IN ({changed})"
    )
    return [
        f"""
        CREATE FUNCTION ticket_totals_follow() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {apply(f"SELECT 1 AS sign, {watched} FROM new_rows")}
            ELSIF TG_OP = 'DELETE' THEN
                {apply(f"SELECT -1 AS sign, {watched} FROM old_rows")}
            ELSE
                {apply(on_update)}
            END IF;
            RETURN NULL;
        END
        $$
        """,
        """
        CREATE TRIGGER ticket_totals_on_insert AFTER INSERT ON tickets
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ticket_totals_follow()
        """,
        """
        CREATE TRIGGER ticket_totals_on_update AFTER UPDATE ON tickets
        REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION ticket_totals_follow()
        """,
        """
        CREATE TRIGGER ticket_totals_on_delete AFTER DELETE ON tickets
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ticket_totals_follow()
        """,
    ]


def _sqlite_add(row: str, sign: str) -> str:
    totals = _totals_select("", f"{row}.", "sqlite", sign, grouped=False)
    return f"INSERT INTO ticket_totals_delta (team_key, {NAMES}) {totals}; " + "".join(
        f"INSERT INTO ticket_time_delta (team_key, metric, value, n) "
        f"SELECT {team_key_sql(f'{row}.', 'sqlite')}, {metric}, {row}.{column}, {sign} "
        f"WHERE {row}.{column} IS NOT NULL; "
        for metric, column in ((FIRST_RESPONSE, "response_time"), (RESOLUTION, "resolution_time"))
    )


def _sqlite() -> list[str]:
    differs = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
    return [
        f"CREATE TRIGGER ticket_totals_on_insert AFTER INSERT ON tickets BEGIN {_sqlite_add('NEW', '1')} END",
        f"CREATE TRIGGER ticket_totals_on_delete AFTER DELETE ON tickets BEGIN {_sqlite_add('OLD', '-1')} END",
        f"CREATE TRIGGER ticket_totals_on_update AFTER UPDATE OF {', '.join(WATCHED)} ON tickets "
        f"WHEN {differs} BEGIN {_sqlite_add('OLD', '-1')} {_sqlite_add('NEW', '1')} END",
    ]


def upgrade() -> None:
    counted = [sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTED]
    op.create_table(
        "ticket_totals",
        sa.Column("team_key", sa.Uuid(), nullable=False),
        *counted,
        sa.PrimaryKeyConstraint("team_key"),
    )
    op.create_table(
        "ticket_totals_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_key", sa.Uuid(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTED),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, column in (("ticket_time_counts", "value"), ("ticket_time_buckets", "bucket")):
        op.create_table(
            name,
            sa.Column("team_key", sa.Uuid(), nullable=False),
            sa.Column("metric", sa.SmallInteger(), nullable=False),
            sa.Column(column, sa.Integer(), nullable=False),
            sa.Column("n", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("team_key", "metric", column),
        )
    op.create_table(
        "ticket_time_delta",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("team_key", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Writers wait until the triggers and the backfill below commit together: no ticket written
        # meanwhile is counted twice or not at all.
        op.execute("LOCK TABLE tickets IN SHARE ROW EXCLUSIVE MODE")
    for statement in _postgres() if dialect == "postgresql" else _sqlite():
        op.execute(statement)
    op.execute(
        f"INSERT INTO ticket_totals (team_key, {NAMES}) "
        + _totals_select("tickets", "", dialect, "1", grouped=True)
    )
    times = _times_select("tickets", "", dialect, "1")
    op.execute(
        "INSERT INTO ticket_time_counts (team_key, metric, value, n) "
        f"SELECT team_key, metric, value, sum(n) FROM ({times}) x GROUP BY 1, 2, 3"
    )
    op.execute(
        "INSERT INTO ticket_time_buckets (team_key, metric, bucket, n) "
        f"SELECT team_key, metric, value / {BUCKET}, sum(n) FROM ({times}) x GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name} ON tickets")
        op.execute("DROP FUNCTION ticket_totals_follow()")
    else:
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    for name in TABLES:
        op.drop_table(name)
