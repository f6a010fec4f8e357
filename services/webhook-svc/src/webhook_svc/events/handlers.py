"""Handlers for the events webhook-svc consumes: every event type of the catalogue (listed under
"webhook" in crm_common.events.catalogue.SUBSCRIPTIONS). Each runs inside the inbox transaction and
queues the deliveries the event owes; the user and team events also keep crm_common's directory (and
what each user may read, for record scopes)."""

from crm_common import directory
from crm_common.contracts.catalogue import by_routing_key
from crm_common.contracts.customer import CustomerErased
from crm_common.db import Database
from crm_common.events.catalogue import SUBSCRIPTIONS
from crm_common.events.envelope import CloudEvent
from crm_common.events.inbox import Upsert
from sqlalchemy.ext.asyncio import AsyncSession

from webhook_svc.delivery.worker import DeliveryWorker
from webhook_svc.service import deliveries, record_scopes

_contracts = by_routing_key()


def check_contract(event: CloudEvent) -> None:
    """What goes out to other systems keeps the published contract: an event that breaks it is
    refused here (a ValidationError: dead-lettered at once) rather than passed on."""
    _contracts[event.routing_key].model_validate(event.data)


async def wanted(db: Database, event: CloudEvent) -> bool | Upsert:
    """Whether an event can have an effect here: the directory's and `customer.erased` (which scrubs
    the delivery log) always, the others when an active subscription wants them
    (deliveries.wanted_by_any). An event nobody wants that tells a record's owner is still kept for
    that: a subscription made later needs the owner of a record created earlier
    (record_scopes.RecordOwner); when the owner is all it changes, the answer is that one row's
    upsert, which the inbox runs with its claim. An event breaking its contract is refused whether or
    not anyone wants it, as the handler would."""
    check_contract(event)
    if event.routing_key in directory.HANDLERS or event.routing_key == "customer.erased":
        return True
    if await deliveries.wanted_by_any(db, event):
        return True
    return record_scopes.keeping_owner(event)


def _keep_user(keep_directory):
    async def keep(session: AsyncSession, event: CloudEvent) -> None:
        await keep_directory(session, event)
        await record_scopes.on_user_event(session, event)

    return keep


def handlers(worker: DeliveryWorker) -> dict:
    async def forward(session: AsyncSession, event: CloudEvent) -> None:
        check_contract(event)
        await deliveries.fan_out(session, event, wake=worker.wake)

    def with_directory(keep):
        async def handle(session: AsyncSession, event: CloudEvent) -> None:
            await keep(session, event)
            await forward(session, event)

        return handle

    async def erase_then_forward(session: AsyncSession, event: CloudEvent) -> None:
        """customer.erased: the delivery log forgets the customer (deliveries.forget_customer); then
        the event itself goes out, so subscribers erase on their side too."""
        check_contract(event)
        await deliveries.forget_customer(session, CustomerErased.model_validate(event.data).customer_id)
        await forward(session, event)

    table = {key: forward for key in SUBSCRIPTIONS["webhook"]}
    table["customer.erased"] = erase_then_forward
    for key, keep in directory.HANDLERS.items():
        table[key] = with_directory(keep)
    for key in ("user.created", "user.updated"):
        table[key] = with_directory(_keep_user(directory.HANDLERS[key]))
    return table
