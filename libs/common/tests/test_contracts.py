"""The event catalogue is complete and its documents are well formed."""

import uuid

import pytest
from crm_common.contracts.catalogue import EVENTS, asyncapi_document, by_routing_key, json_schema
from crm_common.contracts.customer import CustomerCreated
from crm_common.events.catalogue import SUBSCRIPTIONS
from pydantic import ValidationError


def test_every_subscribed_event_has_a_contract():
    known = set(by_routing_key())
    for consumer, keys in SUBSCRIPTIONS.items():
        assert set(keys) <= known, f"{consumer} subscribes to events without a contract"


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.event_type)
def test_json_schema_is_camel_case_and_versioned(event):
    schema = json_schema(event)
    assert schema["$id"] == f"urn:crm:events:{event.event_type}:v{event.version}"
    assert all("_" not in name for name in schema["properties"])


def test_asyncapi_lists_publishers_and_consumers():
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["customer_created"]["address"] == "customer.created"
    assert "activity_receives_customer_created" in doc["operations"]
    payload = doc["components"]["messages"]["customer_created"]["payload"]
    assert payload["properties"]["type"] == {"const": "crm.customer.created"}


def test_consumers_tolerate_fields_they_do_not_know():
    data = CustomerCreated(
        customer_id=uuid.uuid4(),
        customer_number="CUST-2026-000001",
        type="INDIVIDUAL",
        full_name="A",
        email="a@x.example",
        status="LEAD",
    ).dump()
    parsed = CustomerCreated.model_validate({**data, "addedLater": True})
    assert parsed.customer_number == "CUST-2026-000001"


def test_amounts_in_events_are_documented_and_sent_as_decimal_strings():
    from decimal import Decimal

    from crm_common.contracts.pipeline import OpportunityState

    schema = OpportunityState.model_json_schema(by_alias=True)["properties"]["amount"]
    assert schema["type"] == "string" and "anyOf" not in schema
    state = OpportunityState.model_validate(
        {
            "opportunityId": "00000000-0000-0000-0000-000000000001",
            "customerId": "00000000-0000-0000-0000-000000000002",
            "title": "Deal",
            "status": "OPEN",
            "amount": 1250.5,  # producers of older versions may have sent a number: still accepted
            "currency": "USD",
            "probability": 50,
            "stageId": "00000000-0000-0000-0000-000000000003",
            "stageName": "Proposal",
            "ownerId": "00000000-0000-0000-0000-000000000004",
        }
    )
    assert state.amount == Decimal("1250.5")
    assert state.dump()["amount"] == "1250.5"


@pytest.mark.parametrize(
    ("field", "value"), [("status", "ZOMBIE"), ("type", "ROBOT"), ("priority", "SOMEDAY"), ("status", "lead")]
)
def test_a_value_outside_a_documented_enumeration_is_not_an_event(field, value):
    good = CustomerCreated(
        customer_id=uuid.uuid4(),
        customer_number="CUST-2026-000001",
        type="COMPANY",
        full_name="Acme",
        email="hq@example.com",
        status="LEAD",
        priority="HIGH",
    ).dump()
    assert CustomerCreated.model_validate(good).status == "LEAD"
    with pytest.raises(ValidationError):
        CustomerCreated.model_validate({**good, field: value})


def test_the_enumerations_are_in_the_asyncapi_document():
    text = str(asyncapi_document())
    for values in (
        ["LEAD", "PROSPECT", "CUSTOMER", "INACTIVE"],
        ["INDIVIDUAL", "COMPANY"],
        ["OPEN", "WON", "LOST", "CANCELLED"],
        ["NEW", "OPEN", "PENDING", "ESCALATED", "RESOLVED", "CLOSED"],
        ["CALL", "EMAIL", "MEETING", "TASK", "NOTE", "SMS", "DEMO"],
    ):
        assert f"'enum': {values}" in text, values
