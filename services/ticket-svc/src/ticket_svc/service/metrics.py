"""Ticket metrics: counts by status and priority, SLA breach rate, first-response and resolution
times (average, nearest-rank p90, in business minutes), CSAT average and distribution; overall and
grouped by team or by creation period (UTC day, ISO week starting Monday, month).

Computed in the database. Postgres: one scan per request: every figure is an aggregate of one
SELECT (percentile_disc for the p90s), and a grouped request gets its groups and the overall
figures from the same scan with GROUPING SETS ((key), ()). SQLite (embedded, small): one
aggregate query per level, plus a row_number window query per percentile."""

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from crm_common import directory
from crm_common.record_scope import ScopedCaller
from sqlalchemy import case, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ticket_svc.models import Ticket, TicketPriority, TicketStatus
from ticket_svc.schemas import TicketMetrics, TicketMetricsGroup, TicketMetricsReport
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
) -> TicketMetricsReport:
    where = [in_scope(caller)] if caller is not None else []
    if created_from is not None:
        where.append(Ticket.created_at >= created_from)
    if created_to is not None:
        where.append(Ticket.created_at < created_to)
    if team_id is not None:
        where.append(Ticket.team_id == team_id)
    if assigned_to_id is not None:
        where.append(Ticket.assigned_to_id == assigned_to_id)
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
