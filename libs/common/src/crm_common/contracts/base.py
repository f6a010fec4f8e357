import uuid
from typing import ClassVar

from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

from crm_common.schemas import ApiModel


class EventData(ApiModel):
    """Base of every event payload: camelCase like the API; unknown fields are kept when parsing,
    so a consumer survives a producer that added a field (additive changes keep the version)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    # Routing key and schema version, set by each payload class.
    event_type: ClassVar[str]
    version: ClassVar[int] = 1

    def dump(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)


class RepointedByMerge(EventData):
    """Base of the `*.repointed` events: a record of a context followed a customer merge from the
    merged-away customer to the survivor (published by the context that owns the record, once its
    own handler of `customer.merged` moved it)."""

    from_customer_id: uuid.UUID
    customer_id: uuid.UUID
