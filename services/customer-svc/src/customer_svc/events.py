"""Events customer-svc publishes. Payloads are camelCase, like the API."""

from crm_common.events.envelope import CloudEvent, new_event
from crm_common.observability import current_request_id

from customer_svc.models import Customer

SERVICE = "customer"


def customer_created(customer: Customer) -> CloudEvent:
    return new_event(
        "customer.created",
        service=SERVICE,
        subject=customer.id,
        sequence=customer.version,
        correlation_id=current_request_id(),
        data={
            "customerId": str(customer.id),
            "customerNumber": customer.customer_number,
            "type": customer.type,
            "fullName": customer.full_name,
            "email": customer.email,
            "status": customer.status,
            "source": customer.source,
            "sourceCampaignId": str(customer.source_campaign_id) if customer.source_campaign_id else None,
            "assignedToId": str(customer.assigned_to_id) if customer.assigned_to_id else None,
            "createdBy": str(customer.created_by_id) if customer.created_by_id else None,
        },
    )
