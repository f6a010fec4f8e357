"""Gauges read when Prometheus scrapes `/metrics`: the outbox backlog and the database pool.

Counters and histograms that follow events as they happen live beside their code (the relay's
published/failed counts, the consumers' handler time and lag, dead letters, admission, HTTP); these
are states, cheapest to read on demand: one indexed query on the outbox per scrape.
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Gauge
from sqlalchemy import exists, func, select
from sqlalchemy.pool import QueuePool

from crm_common.events.dead_letters import dead_letters
from crm_common.events.tables import inbox, outbox

if TYPE_CHECKING:  # crm_common.app imports this module
    from crm_common.app import Runtime

# The multiprocess modes apply where several processes share the metrics (`crm up` with serving
# workers, crm_common.observability): a state read at a scrape is the latest read; a process's own
# pool is added to the others'.
OUTBOX_PENDING = Gauge(
    "crm_outbox_pending", "Outbox rows not yet published", ["service"], multiprocess_mode="livemostrecent"
)
OUTBOX_OLDEST_AGE = Gauge(
    "crm_outbox_oldest_pending_age_seconds",
    "Age of the oldest unpublished outbox row (0: none)",
    ["service"],
    multiprocess_mode="livemostrecent",
)
# crm_events_dead_lettered_total{consumer} (crm_common.events.dead_letters) counts them as they come.
DEAD_LETTERS = Gauge(
    "crm_event_dead_letters",
    "Dead letters waiting for an operator in the consumer's event_dead_letters table (crm events dlq)",
    ["consumer"],
    multiprocess_mode="livemostrecent",
)
POOL_IN_USE = Gauge(
    "crm_db_pool_connections_in_use",
    "Database connections checked out",
    ["service"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "crm_db_pool_size", "Database connections the pool keeps open", ["service"], multiprocess_mode="livesum"
)
POOL_OVERFLOW = Gauge(
    "crm_db_pool_overflow", "Connections open beyond the pool size", ["service"], multiprocess_mode="livesum"
)


async def runtime_metrics(runtime: "Runtime", service: str, *, consumer: bool = False) -> None:
    """`consumer`: the service handles events, so it has a dead-letter table to count."""
    async with runtime.db.transaction(read_only=True) as session:
        row = (
            await session.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.state == "PENDING")
            )
        ).one()
        if consumer:
            # Not those a later delivery applied after all (the inbox has them): nothing to do there.
            unapplied = ~exists().where(
                (inbox.c.consumer == dead_letters.c.consumer) & (inbox.c.event_id == dead_letters.c.event_id)
            )
            count = select(func.count()).select_from(dead_letters).where(unapplied)
            waiting = (await session.execute(count)).scalar_one()
            DEAD_LETTERS.labels(service).set(waiting)
    pending, oldest = row
    OUTBOX_PENDING.labels(service).set(pending)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    OUTBOX_OLDEST_AGE.labels(service).set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
    pool = runtime.db.engine.pool
    if isinstance(pool, QueuePool):  # the pools that count their connections (async ones included)
        POOL_IN_USE.labels(service).set(pool.checkedout())
        POOL_SIZE.labels(service).set(pool.size())
        POOL_OVERFLOW.labels(service).set(max(0, pool.overflow()))
