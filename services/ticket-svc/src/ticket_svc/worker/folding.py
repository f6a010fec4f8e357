"""The fold of the metric deltas into the kept totals (service/metric_totals.py), every few seconds
for the life of the service."""

import asyncio
import logging

from ticket_svc.service.metric_totals import fold

log = logging.getLogger("crm.ticket.metrics")


async def run_folding(db, *, interval: float) -> None:
    """The fold, every `interval` seconds, for the life of the service."""
    while True:
        try:
            async with db.transaction() as session:
                await fold(session)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("folding the ticket metric deltas failed; retrying at the next interval")
        await asyncio.sleep(interval)
