"""Who consumes what. One table for the whole platform.

Every service declares all of these queues and bindings when it starts, so an event is routable
(and waits in its consumer's queue) even if the consumer has never run yet. A service's event
handlers must be listed under its name here.
"""

# Every service keeps a directory of users and teams (crm_common.directory) from these.
DIRECTORY_EVENTS = ("user.created", "user.updated", "team.created", "team.updated")

SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "customer": (*DIRECTORY_EVENTS,),
    "pipeline": (*DIRECTORY_EVENTS,),
    "activity": (*DIRECTORY_EVENTS, "customer.created"),
    "ticket": (*DIRECTORY_EVENTS,),
    "campaign": (*DIRECTORY_EVENTS,),
}
