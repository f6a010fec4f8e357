"""Kept aggregates of the ticket metrics (issue 14): what `GET /tickets/metrics` needs, per team, kept
in the transaction of every ticket write by database triggers on `tickets` (migration b5c9e3f7a1d2),
whatever writes it (the API, the scheduler marking breaches, a merge or an erasure, a data fix in SQL).

- `ticket_totals`: per team (`team_key`; the zero uuid stands for "no team") the counts (tickets, by
  status, by priority, with an SLA, breached as far as the row alone says, ratings) and the sums
  behind the averages.
- `ticket_time_counts`: per team, metric (first response, resolution) and value (business minutes)
  how many tickets have that time: an exact histogram, so the nearest-rank p90 is exact too;
  `ticket_time_buckets` the same per BUCKET minutes, so the p90 is found in a few hundred rows.

Writers never lock a shared row: a trigger only appends its statement's signed changes to
`ticket_totals_delta` / `ticket_time_delta`, and `fold` (every few seconds, one process at a time)
moves the deltas into the tables above. Readers add base and deltas up, so the figures are exact at
any moment, folded or not. (Upserting the shared rows from the triggers deadlocked two schedulers
marking breaches in opposite team order.)

A breach of an open ticket whose due time passed but that the scheduler has not marked yet depends
on the time of the request, not on the row: those few tickets are counted at read time from the
partial "pending breach" indexes (ticket_svc.service.metrics).

The SQL below is written once for both dialects: `{r}` is the row's prefix (`NEW.`/`OLD.` in a
SQLite row trigger, nothing over a Postgres transition table). It is frozen with the migration: a
change of what is counted needs a migration that rebuilds the tables."""

import uuid

import sqlalchemy as sa

from ticket_svc.models import OPEN_SQL, TicketPriority, TicketStatus, metadata

BUCKET = 64  # minutes per coarse histogram bucket
FOLD_LOCK = 0x7469636B  # advisory lock of the fold (Postgres)
NO_TEAM = uuid.UUID(int=0)
FIRST_RESPONSE, RESOLUTION = 1, 2

# Columns of the ticket whose change can move a figure (the update trigger's filter).
WATCHED = (
    "team_id",
    "status",
    "priority",
    "first_response_due_at",
    "resolution_due_at",
    "first_response_at",
    "response_breached_at",
    "resolution_breached_at",
    "sla_stopped_at",
    "response_time",
    "resolution_time",
    "satisfaction_rating",
)

_WITH_SLA = "({r}first_response_due_at IS NOT NULL OR {r}resolution_due_at IS NOT NULL)"
_OPEN = OPEN_SQL.replace("status", "{r}status")
# Breached whatever the time: marked, or overdue at the moment the SLA clock stopped (a paused ticket).
_RESPONSE_BREACHED = (
    "({r}response_breached_at IS NOT NULL OR ("
    + _OPEN
    + " AND {r}first_response_at IS NULL AND {r}first_response_due_at IS NOT NULL"
    " AND {r}sla_stopped_at IS NOT NULL AND {r}first_response_due_at < {r}sla_stopped_at))"
)
_RESOLUTION_BREACHED = (
    "({r}resolution_breached_at IS NOT NULL OR (" + _OPEN + " AND {r}resolution_due_at IS NOT NULL"
    " AND {r}sla_stopped_at IS NOT NULL AND {r}resolution_due_at < {r}sla_stopped_at))"
)


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


# column -> per-ticket SQL value (summed over the tickets)
COUNTED: dict[str, str] = {
    "tickets": "1",
    **{f"status_{s.value.lower()}": _flag(f"{{r}}status = '{s.value}'") for s in TicketStatus},
    **{f"priority_{p.value.lower()}": _flag(f"{{r}}priority = '{p.value}'") for p in TicketPriority},
    "with_sla": _flag(_WITH_SLA),
    "breached": _flag(f"{_WITH_SLA} AND ({_RESPONSE_BREACHED} OR {_RESOLUTION_BREACHED})"),
    "response_breached": _flag(f"{_WITH_SLA} AND {_RESPONSE_BREACHED}"),
    "resolution_breached": _flag(f"{_WITH_SLA} AND {_RESOLUTION_BREACHED}"),
    "fr_n": _flag("{r}response_time IS NOT NULL"),
    "fr_sum": "COALESCE({r}response_time, 0)",
    "res_n": _flag("{r}resolution_time IS NOT NULL"),
    "res_sum": "COALESCE({r}resolution_time, 0)",
    "csat_n": _flag("{r}satisfaction_rating IS NOT NULL"),
    "csat_sum": "COALESCE({r}satisfaction_rating, 0)",
    **{f"csat_{n}": _flag(f"{{r}}satisfaction_rating = {n}") for n in range(1, 6)},
}

totals = sa.Table(
    "ticket_totals",
    metadata,
    sa.Column("team_key", sa.Uuid(), primary_key=True),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTED),
)
totals_delta = sa.Table(
    "ticket_totals_delta",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("team_key", sa.Uuid(), nullable=False),
    *(sa.Column(name, sa.BigInteger(), nullable=False) for name in COUNTED),
)
time_counts = sa.Table(
    "ticket_time_counts",
    metadata,
    sa.Column("team_key", sa.Uuid(), primary_key=True),
    sa.Column("metric", sa.SmallInteger(), primary_key=True),
    sa.Column("value", sa.Integer(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)
time_buckets = sa.Table(
    "ticket_time_buckets",
    metadata,
    sa.Column("team_key", sa.Uuid(), primary_key=True),
    sa.Column("metric", sa.SmallInteger(), primary_key=True),
    sa.Column("bucket", sa.Integer(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)
time_delta = sa.Table(
    "ticket_time_delta",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("team_key", sa.Uuid(), nullable=False),
    sa.Column("metric", sa.SmallInteger(), nullable=False),
    sa.Column("value", sa.Integer(), nullable=False),
    sa.Column("n", sa.BigInteger(), nullable=False),
)


def team_key_sql(r: str, dialect: str) -> str:
    zero = f"'{NO_TEAM}'::uuid" if dialect == "postgresql" else f"'{NO_TEAM.hex}'"
    return f"COALESCE({r}team_id, {zero})"


def counted_sql(r: str) -> dict[str, str]:
    return {name: expression.format(r=r) for name, expression in COUNTED.items()}


# --- folding the deltas ------------------------------------------------------------------------------

_NAMES = ", ".join(COUNTED)
_SUMS = ", ".join(f"sum({c})" for c in COUNTED)


def _add(alias: str, columns) -> str:
    return ", ".join(f"{c} = {alias}{c} + excluded.{c}" for c in columns)


async def fold(session) -> None:
    """Move the deltas into the kept tables (exact: the sums do not change). Postgres: each delta is
    deleted and folded by one statement, so a delta committed meanwhile stays for the next fold, and
    one process folds at a time (an advisory lock; the others skip). SQLite: one writer anyway."""
    if session.bind.dialect.name == "postgresql":
        if not (await session.execute(sa.text(f"SELECT pg_try_advisory_xact_lock({FOLD_LOCK})"))).scalar():
            return
        await session.execute(
            sa.text(
                f"WITH gone AS (DELETE FROM ticket_totals_delta RETURNING *) "
                f"INSERT INTO ticket_totals AS t (team_key, {_NAMES}) "
                f"SELECT team_key, {_SUMS} FROM gone GROUP BY team_key ORDER BY team_key "
                f"ON CONFLICT (team_key) DO UPDATE SET {_add('t.', COUNTED)}"
            )
        )
        await session.execute(
            sa.text(
                "WITH gone AS (DELETE FROM ticket_time_delta RETURNING *), "
                "fine AS (INSERT INTO ticket_time_counts AS t (team_key, metric, value, n) "
                "SELECT team_key, metric, value, sum(n) FROM gone GROUP BY 1, 2, 3 HAVING sum(n) <> 0 "
                "ORDER BY 1, 2, 3 ON CONFLICT (team_key, metric, value) DO UPDATE SET n = t.n + excluded.n) "
                "INSERT INTO ticket_time_buckets AS t (team_key, metric, bucket, n) "
                f"SELECT team_key, metric, value / {BUCKET}, sum(n) FROM gone GROUP BY 1, 2, 3 "
                "HAVING sum(n) <> 0 ORDER BY 1, 2, 3 "
                "ON CONFLICT (team_key, metric, bucket) DO UPDATE SET n = t.n + excluded.n"
            )
        )
        return
    top = (await session.execute(sa.text("SELECT max(id) FROM ticket_totals_delta"))).scalar()
    if top is not None:
        await session.execute(
            sa.text(
                f"INSERT INTO ticket_totals (team_key, {_NAMES}) SELECT team_key, {_SUMS} "
                f"FROM ticket_totals_delta WHERE id <= :top GROUP BY team_key "
                f"ON CONFLICT (team_key) DO UPDATE SET {_add('', COUNTED)}"
            ),
            {"top": top},
        )
        await session.execute(sa.text("DELETE FROM ticket_totals_delta WHERE id <= :top"), {"top": top})
    top = (await session.execute(sa.text("SELECT max(id) FROM ticket_time_delta"))).scalar()
    if top is not None:
        for table, key in (("ticket_time_counts", "value"), ("ticket_time_buckets", f"value / {BUCKET}")):
            column = "value" if key == "value" else "bucket"
            await session.execute(
                sa.text(
                    f"INSERT INTO {table} (team_key, metric, {column}, n) "
                    f"SELECT team_key, metric, {key}, sum(n) FROM ticket_time_delta WHERE id <= :top "
                    f"GROUP BY 1, 2, 3 HAVING sum(n) <> 0 "
                    f"ON CONFLICT (team_key, metric, {column}) DO UPDATE SET n = n + excluded.n"
                ),
                {"top": top},
            )
        await session.execute(sa.text("DELETE FROM ticket_time_delta WHERE id <= :top"), {"top": top})
