"""Base for request/response models: camelCase JSON, snake_case Python; exact decimal fields."""

from decimal import Decimal
from functools import cache, partial
from typing import Annotated, Any, get_args

from fastapi import FastAPI
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic.alias_generators import to_camel
from typing_extensions import TypeAliasType

from crm_common.input_guard import MAX_JSON_DEPTH, check_json_type, check_value, field_kind
from crm_common.routes import api_routes


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestModel(ApiModel):
    """Base of every request body (through `StrictApiModel`, or directly for a body that must take
    unknown members): bounded nesting, no NUL characters, and JSON types taken as they are meant
    (crm_common.input_guard). Nested request models check their own fields again, with precise
    paths; the outer check already bounds how deep that goes."""

    @field_validator("*", mode="before")
    @classmethod
    def _guard(cls, value: Any, info: ValidationInfo) -> Any:
        # The body is one level around its fields.
        check_value(value, max_depth=MAX_JSON_DEPTH - 1)
        if info.field_name is not None:
            check_json_type(_kinds(cls).get(info.field_name), value)
        return value


@cache
def _kinds(model: type[BaseModel]) -> dict[str, str | None]:
    return {name: field_kind(f.annotation) for name, f in model.model_fields.items()}


class StrictApiModel(RequestModel):
    """For request bodies: an unknown field is a 422, not silently dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# A record's custom fields: a JSON object (flat or nested) whose keys are short strings. One named
# schema (`CustomFields`) for every service, so that the OpenAPI document has one `$ref` and generated
# clients one class, whether a field is required, defaulted or nullable (inline, each model got its own:
# `CustomerCreateCustomfields`, `OpportunityUpdateCustomFieldsType0`).
CustomFields = TypeAliasType(
    "CustomFields", dict[Annotated[str, StringConstraints(min_length=1, max_length=100)], Any]
)


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


def unguarded_bodies(app: FastAPI) -> list[str]:
    """`METHOD path: Model` for each JSON request body not built on `RequestModel`."""
    found = []
    for served, route in api_routes(app):
        for field in route.dependant.body_params:
            model = field.field_info.annotation
            for alternative in get_args(model) or (model,):
                if alternative is type(None):
                    continue
                if not (isinstance(alternative, type) and issubclass(alternative, RequestModel)):
                    found.append(f"{','.join(sorted(served.methods))} {served.path}: {alternative}")
    return found
