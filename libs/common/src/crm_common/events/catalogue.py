"""Who consumes what. One table for the whole platform.

Every service declares all of these queues and bindings when it starts, so an event is routable
(and waits in its consumer's queue) even if the consumer has never run yet.
"""

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "activity": ("customer.created",),
}
