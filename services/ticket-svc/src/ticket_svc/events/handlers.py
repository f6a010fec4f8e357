"""The events ticket-svc consumes (customer-svc's customers, for the local customer table): each
mapped to its function in service/."""

from crm_common import customer_refs, erasure

from ticket_svc.service import reactions

HANDLERS = {
    **customer_refs.handlers(reactions.repoint),
    "customer.erased": erasure.erased_handler(reactions.scrub_erased_customer),
}
