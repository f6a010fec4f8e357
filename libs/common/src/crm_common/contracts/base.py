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
