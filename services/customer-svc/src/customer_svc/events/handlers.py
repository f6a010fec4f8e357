"""Handlers for the events customer-svc consumes (listed under "customer" in
crm_common.events.catalogue.SUBSCRIPTIONS). Each runs inside the inbox transaction."""

from customer_svc.service import reactions

HANDLERS = {
    "opportunity.created": reactions.apply_opportunity,
    "opportunity.updated": reactions.apply_opportunity,
    "opportunity.stage_changed": reactions.apply_opportunity,
    "opportunity.won": reactions.apply_opportunity,
    "opportunity.lost": reactions.apply_opportunity,
    "opportunity.purged": reactions.apply_opportunity_purged,
    "activity.completed": reactions.apply_activity_completed,
    "ticket.communication_added": reactions.apply_ticket_communication,
}
