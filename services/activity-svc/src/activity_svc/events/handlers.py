"""The events activity-svc consumes, each mapped to its reaction in service/ (run in the inbox
transaction: crm_common.events.inbox)."""

from crm_common import customer_refs, erasure

from activity_svc.service import reactions

HANDLERS = {
    "customer.created": reactions.on_customer_created,
    "customer.updated": customer_refs.on_customer_updated,
    "customer.converted": reactions.on_customer_converted,
    "customer.merged": reactions.on_customer_merged,
    "customer.assigned": reactions.on_customer_assigned,
    "customer.purged": customer_refs.on_customer_purged,
    "opportunity.created": reactions.on_opportunity_created,
    "opportunity.stage_changed": reactions.on_opportunity_stage_changed,
    "opportunity.won": reactions.on_opportunity_won,
    "opportunity.lost": reactions.on_opportunity_lost,
    "ticket.created": reactions.on_ticket_created,
    "ticket.escalated": reactions.on_ticket_escalated,
    "ticket.resolved": reactions.on_ticket_resolved,
    "ticket.closed": reactions.on_ticket_closed,
    "campaign.target_added": reactions.on_campaign_target_added,
    "campaign.member_converted": reactions.on_campaign_member_converted,
    "customer.erased": erasure.erased_handler(reactions.scrub_erased_customer),
}
