"""Handlers for the events pipeline-svc consumes (listed under "pipeline" in
crm_common.events.catalogue.SUBSCRIPTIONS); the bodies are in service/reactions.py."""

from crm_common import customer_refs, erasure

from pipeline_svc.service import reactions

HANDLERS = {
    **customer_refs.handlers(reactions.repoint),
    "customer.converted": reactions.on_customer_converted,
    "customer.erased": erasure.erased_handler(reactions.scrub_erased_customer),
}
