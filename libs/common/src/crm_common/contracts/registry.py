"""Every event type the platform publishes, from every producing context's contract module.

Apart from `catalogue` (which documents them together with who consumes them) so that the
subscription table in crm_common.events.catalogue can name "all of them" without an import cycle."""

from types import ModuleType

from crm_common.contracts import activity, campaign, customer, identity, pipeline, ticket, webhook
from crm_common.contracts.base import EventData

_MODULES = (identity, customer, pipeline, activity, ticket, campaign, webhook)


def _events_of(module: ModuleType) -> list[type[EventData]]:
    found: list[type[EventData]] = []
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, EventData) and "event_type" in value.__dict__:
            found.append(value)
    return found


# Every payload class with its own `event_type`, from every producing context's module.
EVENTS: tuple[type[EventData], ...] = tuple(e for m in _MODULES for e in _events_of(m))
EVENT_TYPES: tuple[str, ...] = tuple(e.event_type for e in EVENTS)
