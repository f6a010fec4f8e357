import uuid
from datetime import datetime
from typing import Any, ClassVar

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

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class RepointedByMerge(EventData):
    """Base of the `*.repointed` events: a record of a context followed a customer merge from the
    merged-away customer to the survivor (published by the context that owns the record, once its
    own handler of `customer.merged` moved it)."""

    from_customer_id: uuid.UUID
    customer_id: uuid.UUID


class RecordArchived(EventData):
    """Base of the `*.archived` events: the record is hidden from lists and searches (crm_common.archive)
    and purged after the retention unless restored. Consumers treat it like a field update."""

    archived_by: uuid.UUID | None = None
    archived_at: datetime


class RecordRestored(EventData):
    """Base of the `*.restored` events: an archived record is live again."""

    restored_by: uuid.UUID | None = None
    restored_at: datetime


class RecordPurged(EventData):
    """Base of the `*.purged` events: an archived record was deleted once the archive retention passed.
    Consumers react as to a deletion; the id is never used again."""

    archived_at: datetime
    purged_at: datetime
