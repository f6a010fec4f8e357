"""Who consumes what. One table for the whole platform.

Every service declares all of these queues and bindings when it starts, so an event is routable
(and waits in its consumer's queue) even if the consumer has never run yet. A service's event
handlers must be listed under its name here.
"""

from crm_common.contracts.registry import EVENT_TYPES

# Every service keeps a directory of users and teams (crm_common.directory) from these.
DIRECTORY_EVENTS = ("user.created", "user.updated", "team.created", "team.updated")
# ... and every context that references customers keeps crm_common.customer_refs from these.
CUSTOMER_REF_EVENTS = (
    "customer.created",
    "customer.updated",
    "customer.converted",
    "customer.merged",
    "customer.assigned",
    "customer.purged",
)
# ... and scrubs what it holds about a person on this one (crm_common.erasure).
ERASURE_EVENTS = ("customer.erased",)

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "customer": (
        *DIRECTORY_EVENTS,
        "opportunity.created",
        "opportunity.updated",
        "opportunity.stage_changed",
        "opportunity.won",
        "opportunity.lost",
        "opportunity.purged",
        "activity.completed",
        "ticket.communication_added",
    ),
    "pipeline": (
        *DIRECTORY_EVENTS,
        *CUSTOMER_REF_EVENTS,
        *ERASURE_EVENTS,
    ),
    "activity": (
        *DIRECTORY_EVENTS,
        *CUSTOMER_REF_EVENTS,
        *ERASURE_EVENTS,
        "opportunity.created",
        "opportunity.stage_changed",
        "opportunity.won",
        "opportunity.lost",
        "ticket.created",
        "ticket.escalated",
        "ticket.resolved",
        "ticket.closed",
        "campaign.target_added",
        "campaign.member_converted",
    ),
    # Every context that references customers keeps crm_common.customer_refs from the same six.
    "ticket": (*DIRECTORY_EVENTS, *CUSTOMER_REF_EVENTS, *ERASURE_EVENTS),
    "campaign": (
        *DIRECTORY_EVENTS,
        *CUSTOMER_REF_EVENTS,
        *ERASURE_EVENTS,
        "opportunity.won",
    ),
    # webhook-svc forwards any event to the HTTP endpoints subscribed to it, so it consumes them all
    # (its own `webhook.disabled` included: another endpoint may want to hear of it).
    "webhook": EVENT_TYPES,
}
