"""Which events a subscription wants: event-type patterns and the optional filter.

Patterns are routing keys with AMQP topic wildcards, as a queue binding would be written
(`customer.*`, `*.created`, `opportunity.won`, `#` for everything); a lone `*` also means every
event. The filter is `{dotted path in the CloudEvent: value or list of values}`, every entry must
match (`{"data.status": ["CUSTOMER", "LEAD"]}`, `{"subject": "<id>"}`).
"""

import re
from typing import Any

from crm_common.contracts.registry import EVENT_TYPES
from crm_common.errors import FieldError
from crm_common.events.bus import topic_matches

from webhook_svc.service.errors import InvalidFilter, UnknownEventType

_WORD = re.compile(r"^([a-z][a-z0-9_]*|\*|#)$")
MAX_FILTER_ENTRIES = 20


def matches(patterns: list[str], routing_key: str) -> bool:
    return any(p == "*" or topic_matches(p, routing_key) for p in patterns)


def check_event_types(patterns: list[str], *, field: str = "eventTypes") -> list[str]:
    """The patterns, deduplicated; a 422 for one that is malformed or matches no published event."""
    errors = []
    for i, pattern in enumerate(patterns):
        if pattern != "*" and not all(_WORD.match(w) for w in pattern.split(".")):
            errors.append(
                FieldError(
                    field=f"{field}.{i}",
                    message=f"`{pattern}` is not an event type or pattern (e.g. customer.* or opportunity.won)",
                    code="invalid_event_type",
                )
            )
        elif not any(matches([pattern], key) for key in EVENT_TYPES):
            errors.append(
                FieldError(
                    field=f"{field}.{i}",
                    message=f"`{pattern}` matches no event the platform publishes (GET /api/v1/webhooks/event-types)",
                    code="unknown_event_type",
                )
            )
    if errors:
        raise UnknownEventType("Some event types are not known.", errors=errors)
    return list(dict.fromkeys(patterns))


_SCALAR = (str, int, float, bool, type(None))


def check_filter(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value:
        return None
    errors = []
    if len(value) > MAX_FILTER_ENTRIES:
        errors.append(
            FieldError(field="filter", message=f"at most {MAX_FILTER_ENTRIES} entries", code="too_long")
        )
    for path, wanted in value.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if not path or not all(part for part in path.split(".")):
            errors.append(FieldError(field=f"filter.{path}", message="empty path", code="invalid_path"))
        elif not options or not all(isinstance(o, _SCALAR) for o in options):
            errors.append(
                FieldError(
                    field=f"filter.{path}",
                    message="a value or a non-empty list of values (strings, numbers, booleans, null)",
                    code="invalid_filter_value",
                )
            )
    if errors:
        raise InvalidFilter("The filter is not valid.", errors=errors)
    return value


_MISSING = object()


def _lookup(document: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(document, dict) or part not in document:
            return _MISSING
        document = document[part]
    return document


def filter_matches(filter_: dict[str, Any] | None, event: dict[str, Any]) -> bool:
    """Every entry's path holds one of its values (compared as JSON values: "3" is not 3)."""
    if not filter_:
        return True
    for path, wanted in filter_.items():
        options = wanted if isinstance(wanted, list) else [wanted]
        found = _lookup(event, path)
        if found is _MISSING or not any(found == o and type(found) is type(o) for o in options):
            return False
    return True
