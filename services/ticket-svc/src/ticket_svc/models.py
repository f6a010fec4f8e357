"""ticket-svc tables. The domain tables arrive with the ticket issue; until then the service owns only its
outbox and inbox (created by its first migration)."""

from crm_common.models import SQLModel, new_registry

registry = new_registry()


class Base(SQLModel, registry=registry):
    pass


metadata = Base.metadata
