"""Base for request/response models: camelCase JSON, snake_case Python; exact decimal fields."""

from decimal import Decimal
from functools import partial
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class StrictApiModel(ApiModel):
    """For request bodies: an unknown field is a 422, not silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _fixed_places(step: Decimal, value: Decimal) -> Decimal:
    # "100" and "100.00" are the same amount: answer it the same way everywhere. "-0" passes a
    # `>= 0` bound but would be answered "-0.00", which the documented pattern does not allow.
    value = value.quantize(step)
    return value.copy_abs() if value.is_zero() else value


def decimal_string(
    *,
    max_digits: int,
    decimal_places: int = 2,
    ge: Decimal | int | None = None,
    gt: Decimal | int | None = None,
    le: Decimal | int | None = None,
    example: str,
    description: str | None = None,
) -> Any:
    """An exact, non-negative decimal, answered with `decimal_places` places and documented as a
    string in both JSON Schema modes.

    Pydantic documents a request `Decimal` as `number | string`: generated SDKs then offer floats
    for exact amounts, and a model used both ways is split into `X-Input` and `X-Output`. Input
    stays as lenient as a plain `Decimal` (JSON numbers and strings pydantic can parse); only the
    documented type is narrowed to what clients should send and what they get back."""
    if not any(bound is not None and bound >= 0 for bound in (ge, gt)):
        # The documented pattern has no sign, so a negative value could be neither sent nor read.
        raise ValueError("decimal_string needs a lower bound of 0 or more (ge or gt)")
    whole = max_digits - decimal_places
    schema: dict[str, Any] = {
        "type": "string",
        "pattern": rf"^\d{{1,{whole}}}(\.\d{{1,{decimal_places}}})?$",
        "examples": [example],
    }
    if description:
        schema["description"] = description
    return Annotated[
        Decimal,
        Field(ge=ge, gt=gt, le=le, max_digits=max_digits, decimal_places=decimal_places, allow_inf_nan=False),
        AfterValidator(partial(_fixed_places, Decimal(1).scaleb(-decimal_places))),
        WithJsonSchema(schema),
    ]


# Exact, never negative, two places in JSON ("1250.00"); NUMERIC(18, 2) in the database.
Money = decimal_string(max_digits=18, ge=0, example="1250.00")


# Decimals in event payloads: documented as strings, as they are sent ("1250.00"), so code generated
# from the AsyncAPI document gets a string, not a float; validated without bounds, because a
# consumer must not refuse an event the producer accepted.
EventDecimal = Annotated[
    Decimal,
    Field(allow_inf_nan=False),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["1250.00"]}),
]
