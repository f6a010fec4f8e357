"""Money is exact, answered with two places, and documented as a decimal string (issue 8)."""

import re
from decimal import Decimal

import pytest
from crm_common.schemas import ApiModel, Money, StrictApiModel, decimal_string
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError

MONEY = TypeAdapter(Money)
DOCUMENTED = {"type": "string", "pattern": r"^\d{1,16}(\.\d{1,2})?$", "examples": ["1250.00"]}


@pytest.mark.parametrize(
    ("sent", "answered"),
    [
        ('"1250.00"', "1250.00"),
        ('"100"', "100.00"),
        ('"0.5"', "0.50"),
        ('"100.000"', "100.00"),
        ('"9999999999999999.99"', "9999999999999999.99"),
        ('"-0"', "0.00"),
        # Lenient input: what a plain Decimal took before stays accepted, JSON numbers included.
        ("100", "100.00"),
        ("1250.5", "1250.50"),
        ("0.1", "0.10"),
        ('"1e3"', "1000.00"),
    ],
)
def test_valid_amounts_are_answered_with_two_places(sent, answered):
    value = MONEY.validate_json(sent)
    assert isinstance(value, Decimal)
    assert MONEY.dump_json(value).decode() == f'"{answered}"'
    assert re.fullmatch(DOCUMENTED["pattern"], answered)


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ('"-0.01"', "greater_than_equal"),
        ("-1", "greater_than_equal"),
        ('"1.005"', "decimal_max_places"),
        ('"10000000000000000"', "decimal_whole_digits"),
        ('"NaN"', "finite_number"),
        ('"Infinity"', "finite_number"),
        ('"ten"', "decimal_parsing"),
        ('""', "decimal_parsing"),
        ("true", "decimal_type"),
        ("null", "decimal_type"),
    ],
)
def test_invalid_amounts_are_refused(sent, error):
    with pytest.raises(ValidationError) as raised:
        MONEY.validate_json(sent)
    assert [e["type"] for e in raised.value.errors()] == [error]


@pytest.mark.parametrize("mode", ["validation", "serialization"])
def test_documented_as_a_decimal_string_in_both_modes(mode):
    assert MONEY.json_schema(mode=mode) == DOCUMENTED
    assert TypeAdapter(Money | None).json_schema(mode=mode) == {"anyOf": [DOCUMENTED, {"type": "null"}]}


def test_a_model_sent_and_answered_has_one_schema():
    class Price(StrictApiModel):
        amount: Money
        discount: Money | None = None

    class Priced(ApiModel):
        price: Price

    app = FastAPI()

    @app.post("/prices")
    async def echo(price: Price) -> Priced:
        return Priced(price=price)

    schemas = app.openapi()["components"]["schemas"]
    assert {"Price", "Priced"} <= set(schemas)
    assert not [name for name in schemas if name.startswith("Price-")]
    assert schemas["Price"]["properties"]["amount"]["pattern"] == DOCUMENTED["pattern"]


def test_other_decimal_strings_keep_their_bounds_and_document_their_size():
    percent = TypeAdapter(
        decimal_string(max_digits=5, ge=0, le=100, example="10.00", description="Percent off.")
    )
    assert percent.json_schema(mode="serialization") == {
        "type": "string",
        "pattern": r"^\d{1,3}(\.\d{1,2})?$",
        "examples": ["10.00"],
        "description": "Percent off.",
    }
    assert percent.dump_json(percent.validate_json("12.5")) == b'"12.50"'
    with pytest.raises(ValidationError):
        percent.validate_json('"100.01"')
    count = TypeAdapter(decimal_string(max_digits=12, gt=0, example="1.00"))
    with pytest.raises(ValidationError):
        count.validate_json('"0"')


def test_a_decimal_string_needs_a_non_negative_lower_bound():
    # Its pattern has no sign: a negative value could be neither documented nor answered.
    with pytest.raises(ValueError):
        decimal_string(max_digits=5, example="1.00")
    with pytest.raises(ValueError):
        decimal_string(max_digits=5, ge=-1, example="1.00")
