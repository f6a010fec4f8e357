"""Events customer-svc publishes (contracts in crm_common.contracts.customer)."""

from crm_common.contracts.customer import CustomerCreated
from crm_common.events.envelope import CloudEvent, event_from

from customer_svc.models import Customer

SERVICE = "customer"


def customer_created(customer: Customer) -> CloudEvent:
    payload = CustomerCreated(
        customer_id=customer.id,
        customer_number=customer.customer_number,
        type=customer.type,
        full_name=customer.full_name,
        email=customer.email,
        status=customer.status,
        source=customer.source,
        source_campaign_id=customer.source_campaign_id,
        assigned_to_id=customer.assigned_to_id,
        created_by=customer.created_by_id,
    )
    return event_from(payload, service=SERVICE, subject=customer.id, sequence=customer.version)
