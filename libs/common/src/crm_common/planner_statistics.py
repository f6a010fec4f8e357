"""SQLite's planner statistics, kept fresh in the embedded default.

Postgres keeps its own (autovacuum analyzes tables as they change). SQLite has none until ANALYZE
runs, and without them its planner takes any index an equality can use as selective: every list's
`archived_at IS NULL` went through the archived-at index, which holds nearly every row, and then
sorted them all, instead of walking the index of the list's order and stopping at the page (the
customer list at 10k customers: 2.5 ms of SQL per page instead of 0.2). `analysis_limit` bounds
the cost: ANALYZE samples about that many rows per index (a few milliseconds per database), which
is what the planner needs to tell a selective index from one that is not.
"""

import asyncio
import logging

from sqlalchemy import text

from crm_common.db import Database

log = logging.getLogger(__name__)

# Rows ANALYZE reads per index (SQLite's own suggestion is 100-1000).
ANALYSIS_LIMIT = 1000


async def analyze(db: Database) -> None:
    """Refresh the statistics of `db` if it is SQLite (ANALYZE writes them: a writer's turn)."""
    if not db.is_sqlite:
        return
    async with db.single_statements() as conn:
        await conn.execute(text(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}"))
        await conn.execute(text("ANALYZE"))


async def keep_fresh(name: str, db: Database, every: float) -> None:
    """A service's background task in the embedded default: analyze now, then every `every` seconds,
    so a database that started empty (ANALYZE records nothing for an empty table) gets statistics
    once it holds rows. A failed round is logged and tried again at the next."""
    while True:
        try:
            await analyze(db)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s: ANALYZE failed; trying again in %.0f s", name, every, exc_info=True)
        await asyncio.sleep(every)
