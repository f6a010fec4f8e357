"""Events published by customer-svc."""

import uuid
from typing import ClassVar

from crm_common.contracts.base import EventData


class CustomerCreated(EventData):
    event_type: ClassVar[str] = "customer.created"
    version: ClassVar[int] = 1

    customer_id: uuid.UUID
    customer_number: str
    type: str
    full_name: str
    email: str
    status: str
    source: str | None = None
    source_campaign_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
