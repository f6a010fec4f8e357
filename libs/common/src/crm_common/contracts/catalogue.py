"""The event catalogue: every event the platform publishes, as JSON Schema and as AsyncAPI 3.0."""

from typing import Any

from crm_common.contracts.base import EventData
from crm_common.contracts.registry import EVENTS
from crm_common.events.catalogue import SUBSCRIPTIONS

__all__ = ["EVENTS", "asyncapi_document", "by_routing_key", "json_schema"]

_ENVELOPE_DOC = (
    "CloudEvents 1.0 in structured JSON mode (content type application/cloudevents+json). "
    "Routing key on the `crm.events` topic exchange = `type` without the `crm.` prefix.\n\n"
    "Subscribing from another system: the exchange is `<CRM_EVENTS_NAMESPACE>crm.events` (a durable "
    "topic exchange; the namespace is empty unless the operator set one, e.g. `prod.crm.events`). "
    "Declare your own durable **quorum** queue (`x-queue-type: quorum`) named for your system, bind it "
    "with the routing keys you want (`customer.*`, `opportunity.won`, `#` for all), and give it a "
    "dead-letter queue: a direct exchange of your own as `x-dead-letter-exchange` plus an "
    "`x-delivery-limit`, so a message your consumer keeps refusing is parked instead of redelivered "
    "forever. Acknowledge after your own transaction commits and deduplicate on the CloudEvent `id` "
    "(delivery is at least once). docs/examples/consume_events.py is a complete consumer."
)

# The broker the events travel on in distributed mode; operators give the real one in CRM_AMQP_URL.
_SERVERS = {
    "rabbitmq": {
        "host": "127.0.0.1:5672",
        "protocol": "amqp",
        "protocolVersion": "0-9-1",
        "description": "The RabbitMQ named by CRM_AMQP_URL (this is the default of a local install). "
        "Exchange `<CRM_EVENTS_NAMESPACE>crm.events`, topic, durable; messages are persistent.",
    }
}


def by_routing_key() -> dict[str, type[EventData]]:
    return {e.event_type: e for e in EVENTS}


def json_schema(event: type[EventData]) -> dict[str, Any]:
    schema = event.model_json_schema(by_alias=True)
    schema["$id"] = f"urn:crm:events:{event.event_type}:v{event.version}"
    schema["title"] = f"{event.event_type} v{event.version}"
    return schema


def _envelope_schema(event: type[EventData]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "format": "uuid"},
            "source": {"type": "string", "examples": [f"/crm/{event.event_type.split('.')[0]}"]},
            "type": {"const": f"crm.{event.event_type}"},
            "subject": {"type": "string", "description": "Id of the aggregate the event is about."},
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": f"urn:crm:events:{event.event_type}:v{event.version}"},
            "correlationid": {"type": "string", "description": "Request id of the API call that caused it."},
            "sequence": {"type": "integer", "description": "Per-aggregate, monotonic (aggregate version)."},
            "data": json_schema(event),
        },
    }


def _publisher(event: type[EventData]) -> str:
    context = event.__module__.rsplit(".", 1)[-1]
    return "the gateway" if context == "identity" else f"{context}-svc"


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, dict[str, Any]] = {}
    for event in EVENTS:
        key = event.event_type
        name = key.replace(".", "_")
        messages[name] = {
            "name": f"crm.{key}",
            "title": key,
            "summary": (event.__doc__ or "").strip() or None,
            "contentType": "application/cloudevents+json",
            "payload": _envelope_schema(event),
        }
        channels[name] = {
            "address": key,
            "description": f"Routing key `{key}` on the `<CRM_EVENTS_NAMESPACE>crm.events` topic exchange.",
            "servers": [{"$ref": "#/servers/rabbitmq"}],
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {"name": "crm.events", "type": "topic", "durable": True},
                }
            },
        }
        operations[f"publish_{name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Published by {_publisher(event)}.",
        }
        for consumer, keys in SUBSCRIPTIONS.items():
            if key in keys:
                operations[f"{consumer}_receives_{name}"] = {
                    "action": "receive",
                    "channel": {"$ref": f"#/channels/{name}"},
                    "summary": f"Consumed by {consumer}-svc from queue `{consumer}.events`.",
                }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "CRM domain events", "version": "1.0.0", "description": _ENVELOPE_DOC},
        "defaultContentType": "application/cloudevents+json",
        "servers": _SERVERS,
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {k: {k2: v2 for k2, v2 in v.items() if v2 is not None} for k, v in messages.items()}
        },
    }
