"""CloudEvents 1.0 envelope in structured JSON mode.

`type` is `crm.<aggregate>.<past-tense verb>`; the AMQP routing key is the type without `crm.`.
Extensions: `correlationid` (the request id that caused the event), `sequence` (per-aggregate,
monotonic: the aggregate's version after the change), so consumers can ignore stale updates, and
`traceparent` (the W3C trace context of the request that caused it).
"""

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crm_common.observability import current_request_id
from crm_common.tracing import current_traceparent

if TYPE_CHECKING:
    from crm_common.contracts.base import EventData

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "crm."


class CloudEvent(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = "1.0"
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    source: str
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = None
    sequence: int | None = None
    # W3C trace context of the request that caused the event (the CloudEvents distributed tracing
    # extension), so the consumer's work joins the same trace.
    traceparent: str | None = None

    @field_validator("specversion")
    @classmethod
    def _v1(cls, value: str) -> str:
        if value != "1.0":
            raise ValueError("only CloudEvents 1.0 is supported")
        return value

    @field_validator("type")
    @classmethod
    def _crm_type(cls, value: str) -> str:
        if not value.startswith(TYPE_PREFIX) or value.count(".") < 2:
            raise ValueError("type must look like crm.<aggregate>.<verb>")
        return value

    @property
    def routing_key(self) -> str:
        return self.type.removeprefix(TYPE_PREFIX)

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "CloudEvent":
        return cls.model_validate(json.loads(raw))


def new_event(
    routing_key: str,
    *,
    service: str,
    subject: object,
    data: dict[str, Any],
    sequence: int | None = None,
    correlation_id: str | None = None,
    schema_version: int = 1,
) -> CloudEvent:
    """Build an event; `routing_key` is the short form, e.g. `customer.created`."""
    return CloudEvent(
        source=f"/crm/{service}",
        type=f"{TYPE_PREFIX}{routing_key}",
        subject=str(subject),
        data=data,
        dataschema=f"urn:crm:events:{routing_key}:v{schema_version}",
        correlationid=correlation_id,
        sequence=sequence,
        traceparent=current_traceparent(),
    )


def event_from(
    payload: "EventData", *, service: str, subject: object, sequence: int | None = None
) -> CloudEvent:
    """An event from a contract payload, correlated with the request being served."""
    return new_event(
        payload.event_type,
        service=service,
        subject=subject,
        data=payload.dump(),
        sequence=sequence,
        correlation_id=current_request_id(),
        schema_version=payload.version,
    )
