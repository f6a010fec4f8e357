import uuid

import pytest
from crm_common.events.envelope import CONTENT_TYPE, CloudEvent, new_event
from pydantic import ValidationError


def test_new_event_fills_the_cloudevents_attributes():
    subject = uuid.uuid4()
    event = new_event(
        "customer.created",
        service="customer",
        subject=subject,
        data={"a": 1},
        sequence=3,
        correlation_id="req-1",
    )
    assert event.specversion == "1.0"
    assert event.type == "crm.customer.created"
    assert event.routing_key == "customer.created"
    assert event.source == "/crm/customer"
    assert event.subject == str(subject)
    assert event.dataschema == "urn:crm:events:customer.created:v1"
    assert event.time.tzinfo is not None
    assert (event.sequence, event.correlationid) == (3, "req-1")
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_structured_json_round_trip_keeps_every_attribute():
    event = new_event("customer.created", service="customer", subject="x", data={"n": [1, 2]}, sequence=1)
    again = CloudEvent.from_json(event.to_json())
    assert again == event


def test_json_omits_unset_optional_attributes():
    event = new_event("customer.created", service="customer", subject="x", data={})
    assert b"correlationid" not in event.to_json()


@pytest.mark.parametrize(
    "bad", [{"type": "customer.created"}, {"type": "crm.customer"}, {"specversion": "0.3"}]
)
def test_invalid_envelopes_are_rejected(bad):
    payload = {"source": "/crm/customer", "type": "crm.customer.created", **bad}
    with pytest.raises(ValidationError):
        CloudEvent.model_validate(payload)
