"""What a consumer accepts, checked before any handler sees an event (the rules in docs/events.md,
"Events a consumer refuses").

- A message must be at most `MAX_EVENT_BYTES` long, be JSON, and be a CloudEvents 1.0 envelope with
  a `crm.<aggregate>.<verb>` type. Anything else is unreadable: it can never be applied, so it is
  dead-lettered at once with the reason (`UnreadableMessage`).
- An event of a type this consumer has no handler for is acknowledged and ignored (a producer may
  add types before consumers learn them; bindings keep such events away in the first place).
- An event of a handled type must name a `dataschema` this code base reads: the contract's current
  `urn:crm:events:<key>:v<N>` (or none, read as the current version). Another version is a breaking
  change this consumer does not know; it is dead-lettered, to be replayed by a release that does.
- Its `data` must satisfy the contract: a pydantic ValidationError in a handler is permanent too
  (crm_common.events.inbox).

Largest event: 4 MiB. The CRM's own events are a few hundred bytes to a few KiB, but an update's
event carries the fields it changed, and a request body may be up to 2 MiB
(CRM_GATEWAY_MAX_BODY_BYTES): twice that leaves room for the envelope and JSON escaping, so no
request the API accepts causes an event its consumers refuse, while what a consumer parses, holds
(`event_prefetch` x `event_batch_size` messages at once) and stores as a dead letter stays bounded.
"""

from crm_common.contracts.registry import EVENTS
from crm_common.events.dead_letters import PermanentEventError
from crm_common.events.envelope import TYPE_PREFIX, CloudEvent

MAX_EVENT_BYTES = 4 * 1024 * 1024

# Routing key -> the one dataschema its consumers read.
SCHEMAS: dict[str, str] = {e.event_type: f"urn:crm:events:{e.event_type}:v{e.version}" for e in EVENTS}


class UnreadableMessage(PermanentEventError):
    """The message is not an event at all: too large, not JSON, or not a CloudEvent."""


def read_message(body: bytes) -> CloudEvent:
    """The CloudEvent in a broker message, or UnreadableMessage saying why there is none."""
    if len(body) > MAX_EVENT_BYTES:
        raise UnreadableMessage(f"message of {len(body)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
    try:
        return CloudEvent.from_json(body)
    except RecursionError:
        raise UnreadableMessage("message nests too deeply to be read") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError and pydantic's ValidationError
        reason = str(exc).splitlines()
        raise UnreadableMessage(
            f"not a CloudEvents 1.0 JSON event: {' '.join(line.strip() for line in reason[:4])}"[:500]
        ) from None


def check_event(event: CloudEvent) -> None:
    """Raise PermanentEventError if a handled event is too large or of a schema version we do not
    read. (Events off a broker were size-checked as bytes; in process they come from an outbox.)"""
    key = event.type.removeprefix(TYPE_PREFIX)
    expected = SCHEMAS.get(key)
    if event.dataschema is not None and expected is not None and event.dataschema != expected:
        raise PermanentEventError(
            f"{event.type} {event.id}: dataschema {event.dataschema!r} is not one this consumer reads "
            f"({expected})"
        )
    size = len(event.to_json())
    if size > MAX_EVENT_BYTES:
        raise PermanentEventError(
            f"{event.type} {event.id}: event of {size} bytes exceeds the {MAX_EVENT_BYTES}-byte limit"
        )
