"""Handlers for the events webhook-svc consumes: every event type of the catalogue (listed under
"webhook" in crm_common.events.catalogue.SUBSCRIPTIONS). Each runs inside the inbox transaction and
queues the deliveries the event owes; the user and team events also keep crm_common's directory."""

from crm_common import directory
from crm_common.contracts.catalogue import by_routing_key
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.envelope import CloudEvent
from sqlalchemy.ext.asyncio import AsyncSession

from webhook_svc.delivery.worker import DeliveryWorker
from webhook_svc.service import deliveries


def handlers(worker: DeliveryWorker) -> dict:
    contracts = by_routing_key()

    async def forward(session: AsyncSession, event: CloudEvent) -> None:
        # What goes out to other systems keeps the published contract: an event that breaks it is
        # refused here (a ValidationError: dead-lettered at once) rather than passed on.
        contracts[event.routing_key].model_validate(event.data)
        await deliveries.fan_out(session, event, wake=worker.wake)

    def with_directory(keep):
        async def handle(session: AsyncSession, event: CloudEvent) -> None:
            await keep(session, event)
            await forward(session, event)

        return handle

    table = {key: forward for key in SUBSCRIPTIONS["webhook"]}
    for key, keep in directory.HANDLERS.items():
        table[key] = with_directory(keep)
    return table
