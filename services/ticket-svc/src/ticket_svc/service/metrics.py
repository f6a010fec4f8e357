"""Ticket metrics: counts by status and priority, SLA breach rate, first-response and resolution
times (average, nearest-rank p90, in business minutes), CSAT average and distribution; overall and
grouped by team or by creation period (UTC day, ISO week starting Monday, month).

Two ways to the same figures:

- Kept aggregates (ticket_svc.service.metric_totals: per-team totals and exact time histograms, kept by
  triggers in the transaction of every ticket write) serve a caller whose ticket read scope is `all`
  asking for every ticket, or one team's (`teamId`), overall or `groupBy=team`: a few small reads
  whatever the number of tickets, plus the open tickets whose due time passed since the scheduler last
  marked breaches (read through the partial pending-breach indexes).
- Everything else scans the tickets: a scoped caller (`team`/`own`: the kept figures are per team,
  not per scope), a creation period (`from`/`to`), `assignedToId`, and `groupBy` day/week/month.
  Postgres: every figure is an aggregate of one SELECT (percentile_disc for the p90s), and a grouped
  request gets its groups and the overall figures from the same scan with GROUPING SETS ((key), ()).
  SQLite (embedded, small): one aggregate query per level, plus a row_number window query per
  percentile.

Both give the same answer (tests compare them after every kind of write)."""

import uuid
from collections import defaultdict
from datetime import date, datetime
from types import SimpleNamespace

import sqlalchemy as sa
from crm_common import directory
from crm_common.models import UtcDateTime
from crm_common.record_scope import ScopedCaller
from sqlalchemy import case, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import OPEN_SQL, Ticket, TicketPriority, TicketStatus
from ticket_svc.schemas import TicketMetrics, TicketMetricsGroup, TicketMetricsReport
from ticket_svc.service import metric_totals
from ticket_svc.service.tickets import breached_sql, in_scope, resolution_breached_sql, response_breached_sql

GROUPS = ("team", "day", "week", "month")
_ALL = "__all__"
# Room for the percentile sorts of a big period in memory rather than on disk (this transaction only).
PG_WORK_MEM = "64MB"


def _period_key(session: AsyncSession, period: str):
    column = Ticket.created_at
    if session.bind.dialect.name == "postgresql":
        # Constants as literals, so that the GROUP BY expression is the SELECT expression.
        utc = func.timezone(literal_column("'UTC'"), column)
        return func.date_trunc(literal_column(f"'{period}'"), utc)
    # SQLite keeps UTC timestamps as "YYYY-MM-DD HH:MM:SS.ffffff".
    if period == "month":
        return func.strftime("%Y-%m", column)
    if period == "week":
        days_since_monday = (sa.cast(func.strftime("%w", column), sa.Integer) + 6) % 7
        return func.date(
            column, sa.literal("-").concat(sa.cast(days_since_monday, sa.String)).concat(" days")
        )
    return func.strftime("%Y-%m-%d", column)


def _key_expression(session: AsyncSession, group_by: str | None):
    if group_by is None:
        return None
    if group_by == "team":
        return Ticket.team_id
    return _period_key(session, group_by)


def _key_text(value, group_by: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m" if group_by == "month" else "%Y-%m-%d")
    return str(value)


def _count_if(condition):
    return func.sum(case((condition, 1), else_=0))


def _aggregates(now: datetime, *, pg: bool) -> list:
    has_sla = sa.or_(Ticket.first_response_due_at.is_not(None), Ticket.resolution_due_at.is_not(None))
    rating = Ticket.satisfaction_rating
    columns = [
        func.count().label("total"),
        *(_count_if(Ticket.status == s.value).label(f"status_{s.value}") for s in TicketStatus),
        *(_count_if(Ticket.priority == p.value).label(f"priority_{p.value}") for p in TicketPriority),
        _count_if(has_sla).label("with_sla"),
        _count_if(sa.and_(has_sla, breached_sql(now))).label("breached"),
        _count_if(sa.and_(has_sla, response_breached_sql(now))).label("response_breached"),
        _count_if(sa.and_(has_sla, resolution_breached_sql(now))).label("resolution_breached"),
        func.count(Ticket.response_time).label("fr_n"),
        func.avg(Ticket.response_time).label("fr_avg"),
        func.count(Ticket.resolution_time).label("res_n"),
        func.avg(Ticket.resolution_time).label("res_avg"),
        func.count(rating).label("csat_n"),
        func.avg(rating).label("csat_avg"),
        *(_count_if(rating == r).label(f"csat_{r}") for r in range(1, 6)),
    ]
    if pg:
        columns += [
            func.percentile_disc(0.9).within_group(Ticket.response_time).label("fr_p90"),
            func.percentile_disc(0.9).within_group(Ticket.resolution_time).label("res_p90"),
        ]
    return columns


async def _p90_sqlite(session: AsyncSession, key, where: list, column) -> dict:
    """Nearest-rank 90th percentile of `column` per key (non-null values), for SQLite, which has
    no percentile aggregate: the row whose rank is ceil(0.9 n)."""
    partition = {"partition_by": key} if key is not None else {}
    ranked = (
        select(
            *((key.label("k"),) if key is not None else ()),
            column.label("v"),
            func.row_number().over(order_by=column, **partition).label("rn"),
            func.count().over(**partition).label("n"),
        )
        .where(*where, column.is_not(None))
        .subquery()
    )
    query = select(*((ranked.c.k,) if key is not None else ()), ranked.c.v).where(
        ranked.c.rn == (ranked.c.n * 9 + 9) // 10
    )
    rows = (await session.execute(query)).all()
    return {(r.k if key is not None else _ALL): r.v for r in rows}


def _round(value, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def _metrics(row, fr_p90, res_p90) -> TicketMetrics:
    with_sla = int(row.with_sla or 0)
    breached = int(row.breached or 0)
    return TicketMetrics(
        total=row.total,
        by_status={s.value: int(getattr(row, f"status_{s.value}") or 0) for s in TicketStatus},
        by_priority={p.value: int(getattr(row, f"priority_{p.value}") or 0) for p in TicketPriority},
        sla={
            "with_sla": with_sla,
            "breached": breached,
            "response_breached": int(row.response_breached or 0),
            "resolution_breached": int(row.resolution_breached or 0),
            "breach_rate": round(breached / with_sla, 4) if with_sla else None,
        },
        first_response={"count": row.fr_n, "average_minutes": _round(row.fr_avg), "p90_minutes": fr_p90},
        resolution={"count": row.res_n, "average_minutes": _round(row.res_avg), "p90_minutes": res_p90},
        satisfaction={
            "count": row.csat_n,
            "average": _round(row.csat_avg),
            "distribution": {str(r): int(getattr(row, f"csat_{r}") or 0) for r in range(1, 6)},
        },
    )


async def _postgres(session: AsyncSession, *, key, where: list, now: datetime) -> tuple[TicketMetrics, dict]:
    await session.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
    columns = _aggregates(now, pg=True)
    if key is None:
        row = (await session.execute(select(*columns).where(*where))).one()
        return _metrics(row, row.fr_p90, row.res_p90), {}
    query = (
        select(key.label("k"), func.grouping(key).label("is_overall"), *columns)
        .where(*where)
        .group_by(func.grouping_sets(key, text("()")))
    )
    overall, groups = None, {}
    for row in (await session.execute(query)).all():
        if row.is_overall:
            overall = _metrics(row, row.fr_p90, row.res_p90)
        else:
            groups[row.k] = _metrics(row, row.fr_p90, row.res_p90)
    return overall, groups


async def _sqlite(session: AsyncSession, *, key, where: list, now: datetime) -> tuple[TicketMetrics, dict]:
    columns = _aggregates(now, pg=False)
    row = (await session.execute(select(*columns).where(*where))).one()
    overall = _metrics(
        row,
        (await _p90_sqlite(session, None, where, Ticket.response_time)).get(_ALL),
        (await _p90_sqlite(session, None, where, Ticket.resolution_time)).get(_ALL),
    )
    if key is None:
        return overall, {}
    rows = (await session.execute(select(key.label("k"), *columns).where(*where).group_by(key))).all()
    fr = await _p90_sqlite(session, key, where, Ticket.response_time)
    res = await _p90_sqlite(session, key, where, Ticket.resolution_time)
    return overall, {r.k: _metrics(r, fr.get(r.k), res.get(r.k)) for r in rows}


# --- kept aggregates --------------------------------------------------------------------------------


def kept_can_serve(
    caller: ScopedCaller | None,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    assigned_to_id: uuid.UUID | None,
    group_by: str | None,
) -> bool:
    unscoped = caller is None or caller.read.level == "all"
    return (
        unscoped
        and created_from is None
        and created_to is None
        and assigned_to_id is None
        and (group_by in (None, "team"))
    )


def _team(key: uuid.UUID) -> uuid.UUID | None:
    return None if key == metric_totals.NO_TEAM else key


async def _kept_counts(session: AsyncSession, team_id: uuid.UUID | None) -> dict:
    """{team: {counted column: sum}}: the folded totals plus the deltas not folded yet."""
    parts = []
    for table in (metric_totals.totals, metric_totals.totals_delta):
        part = select(table.c.team_key, *(table.c[c] for c in metric_totals.COUNTED))
        parts.append(part.where(table.c.team_key == team_id) if team_id is not None else part)
    u = sa.union_all(*parts).subquery()
    query = select(u.c.team_key, *(func.sum(u.c[c]).label(c) for c in metric_totals.COUNTED)).group_by(
        u.c.team_key
    )
    return {
        _team(row.team_key): {c: int(row._mapping[c] or 0) for c in metric_totals.COUNTED}
        for row in await session.execute(query)
    }


async def _breaching_now(session: AsyncSession, now: datetime, team_id: uuid.UUID | None) -> list:
    """Open tickets whose due time has passed but whose breach is not marked yet (the scheduler marks
    them on its next pass): their breach depends on `now`, so it is counted here, not kept. The
    conditions repeat the partial pending-breach indexes' (literal status list), so they are used."""
    at = sa.literal(now, UtcDateTime())
    running = sa.and_(text(OPEN_SQL), Ticket.sla_stopped_at.is_(None))
    if team_id is not None:
        running = sa.and_(running, Ticket.team_id == team_id)
    response = sa.and_(
        running,
        Ticket.first_response_at.is_(None),
        Ticket.response_breached_at.is_(None),
        Ticket.first_response_due_at.is_not(None),
        Ticket.first_response_due_at < at,
    )
    resolution = sa.and_(
        running,
        Ticket.resolution_breached_at.is_(None),
        Ticket.resolution_due_at.is_not(None),
        Ticket.resolution_due_at < at,
    )
    # One round trip: each branch reads its own partial index.
    query = sa.union_all(
        *(
            select(
                sa.literal(kind).label("kind"),
                Ticket.id,
                Ticket.team_id,
                Ticket.response_breached_at.is_(None).label("response_unmarked"),
                Ticket.resolution_breached_at.is_(None).label("resolution_unmarked"),
            ).where(condition)
            for kind, condition in (("response", response), ("resolution", resolution))
        )
    )
    return [(row.kind, row) for row in await session.execute(query)]


def _bucket_range(bucket: int) -> tuple[int, int]:
    """The values of a coarse bucket (SQL integer division truncates toward zero)."""
    size = metric_totals.BUCKET
    if bucket > 0:
        return bucket * size, bucket * size + size - 1
    if bucket < 0:
        return bucket * size - size + 1, bucket * size
    return -size + 1, size - 1


async def _kept_p90(session: AsyncSession, team_id: uuid.UUID | None, counts: dict, *, by_team: bool) -> dict:
    """{(team or _ALL, metric): nearest-rank p90} for each key of `counts` ({team or _ALL: totals};
    _ALL adds up every team): the smallest value whose cumulative count reaches ceil(0.9 n) (what
    percentile_disc(0.9) gives). The coarse buckets say where that rank falls, then the exact values
    of that one bucket say which value it is: two queries, overall and per team alike."""
    mt = metric_totals
    targets = {}  # (key, metric) -> rank
    for key, team_counts in counts.items():
        for metric, n in ((mt.FIRST_RESPONSE, team_counts["fr_n"]), (mt.RESOLUTION, team_counts["res_n"])):
            if n:
                targets[(key, metric)] = (9 * n + 9) // 10

    def histogram(base, column: str, delta_value):
        parts = []
        for table, value in ((base, base.c[column]), (mt.time_delta, delta_value)):
            part = select(table.c.team_key, table.c.metric, value.label("v"), table.c.n)
            parts.append(part.where(table.c.team_key == team_id) if team_id is not None else part)
        return sa.union_all(*parts).subquery()

    async def counted(u, where=None) -> dict:
        """{(key, metric): {v: n}} for the targets' keys: per team and, for _ALL, all teams added."""
        keys = [u.c.team_key] if by_team else []
        query = select(*keys, u.c.metric, u.c.v, func.sum(u.c.n).label("n")).group_by(
            *keys, u.c.metric, u.c.v
        )
        if where is not None:
            query = query.where(where)
        found: dict = defaultdict(lambda: defaultdict(int))
        for row in await session.execute(query):
            if by_team:
                found[(_team(row.team_key), row.metric)][row.v] += row.n
            found[(_ALL, row.metric)][row.v] += row.n
        return found

    def position(values: dict, rank: int):
        """(value, rank left) where the cumulative count of `values` in order reaches `rank`."""
        seen = 0
        for v in sorted(values):
            if values[v] and seen + values[v] >= rank:
                return v, rank - seen
            seen += values[v]
        return None, None

    buckets = await counted(histogram(mt.time_buckets, "bucket", mt.time_delta.c.value // mt.BUCKET))
    where = {}  # (key, metric) -> (bucket, rank within it)
    for target, rank in targets.items():
        bucket, left = position(buckets.get(target, {}), rank)
        if bucket is not None:
            where[target] = (int(bucket), left)
    if not where:
        return {}
    u = histogram(mt.time_counts, "value", mt.time_delta.c.value)
    conditions = []
    for (key, metric), (bucket, _) in where.items():
        low, high = _bucket_range(bucket)
        condition = sa.and_(u.c.metric == metric, u.c.v.between(low, high))
        if key != _ALL:
            condition = sa.and_(condition, u.c.team_key == (key or mt.NO_TEAM))
        conditions.append(condition)
    values = await counted(u, sa.or_(*conditions))
    found = {}
    for target, (bucket, left) in where.items():
        low, high = _bucket_range(bucket)
        in_bucket = {v: n for v, n in values.get(target, {}).items() if low <= v <= high}
        value, _ = position(in_bucket, left)
        if value is not None:
            found[target] = int(value)
    return found


def _kept_metrics(counts: dict, p90: dict, key) -> TicketMetrics:
    def avg(total, n):
        return None if not n else total / n

    row = SimpleNamespace(
        total=counts["tickets"],
        **{f"status_{s.value}": counts[f"status_{s.value.lower()}"] for s in TicketStatus},
        **{f"priority_{p.value}": counts[f"priority_{p.value.lower()}"] for p in TicketPriority},
        **{c: counts[c] for c in ("with_sla", "breached", "response_breached", "resolution_breached")},
        fr_n=counts["fr_n"],
        fr_avg=avg(counts["fr_sum"], counts["fr_n"]),
        res_n=counts["res_n"],
        res_avg=avg(counts["res_sum"], counts["res_n"]),
        csat_n=counts["csat_n"],
        csat_avg=avg(counts["csat_sum"], counts["csat_n"]),
        **{f"csat_{r}": counts[f"csat_{r}"] for r in range(1, 6)},
    )
    return _metrics(
        row, p90.get((key, metric_totals.FIRST_RESPONSE)), p90.get((key, metric_totals.RESOLUTION))
    )


async def _kept(
    session: AsyncSession, *, now: datetime, team_id: uuid.UUID | None, by_team: bool
) -> tuple[TicketMetrics, dict]:
    per_team = await _kept_counts(session, team_id)
    # Breaches that happened since the scheduler's last pass: added to the kept (marked) ones.
    unmarked: dict = {}
    for kind, row in await _breaching_now(session, now, team_id):
        counts = per_team.setdefault(row.team_id, defaultdict(int))
        counts[f"{kind}_breached"] += 1
        if row.response_unmarked and row.resolution_unmarked:
            unmarked[row.id] = row.team_id  # breached by time alone: counted once in `breached`
    for team in unmarked.values():
        per_team[team]["breached"] += 1
    per_team = {team: counts for team, counts in per_team.items() if counts.get("tickets")}
    overall_counts = {c: sum(counts.get(c, 0) for counts in per_team.values()) for c in metric_totals.COUNTED}
    p90 = await _kept_p90(
        session, team_id, {_ALL: overall_counts, **(per_team if by_team else {})}, by_team=by_team
    )
    overall = _kept_metrics(overall_counts, p90, _ALL)
    if not by_team:
        return overall, {}
    return overall, {team: _kept_metrics(counts, p90, team) for team, counts in per_team.items()}


async def ticket_metrics(
    session: AsyncSession,
    *,
    now: datetime,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    team_id: uuid.UUID | None = None,
    assigned_to_id: uuid.UUID | None = None,
    group_by: str | None = None,
    caller: ScopedCaller | None = None,
    kept: bool | None = None,
) -> TicketMetricsReport:
    """`kept`: None chooses (the kept aggregates when they can serve the request), False scans."""
    if kept is None:
        kept = kept_can_serve(
            caller,
            created_from=created_from,
            created_to=created_to,
            assigned_to_id=assigned_to_id,
            group_by=group_by,
        )
    where = [in_scope(caller)] if caller is not None else []
    if created_from is not None:
        where.append(Ticket.created_at >= created_from)
    if created_to is not None:
        where.append(Ticket.created_at < created_to)
    if team_id is not None:
        where.append(Ticket.team_id == team_id)
    if assigned_to_id is not None:
        where.append(Ticket.assigned_to_id == assigned_to_id)
    if kept:
        overall, per_key = await _kept(session, now=now, team_id=team_id, by_team=group_by == "team")
    else:
        key = _key_expression(session, group_by)
        compute = _postgres if session.bind.dialect.name == "postgresql" else _sqlite
        overall, per_key = await compute(session, key=key, where=where, now=now)
        if overall is None:  # no ticket at all: GROUPING SETS gives no overall row then
            overall = (await _postgres(session, key=None, where=where, now=now))[0]
    team_names: dict = {}
    if group_by == "team" and per_key:
        ids = [k for k in per_key if k is not None]
        rows = await session.execute(
            select(directory.teams.c.id, directory.teams.c.name).where(directory.teams.c.id.in_(ids))
        )
        team_names = {r.id: r.name for r in rows}
    groups = [
        TicketMetricsGroup(**metrics.model_dump(), key=_key_text(k, group_by), team_name=team_names.get(k))
        for k, metrics in per_key.items()
    ]
    groups.sort(key=lambda g: (g.key is None, g.key or ""))
    return TicketMetricsReport(
        created_from=created_from,
        created_to=created_to,
        group_by=group_by,
        generated_at=now,
        overall=overall,
        groups=groups,
    )
