"""Handlers for the events campaign-svc consumes (listed under "campaign" in
crm_common.events.catalogue.SUBSCRIPTIONS). Each runs inside the inbox transaction."""

from crm_common import customer_refs, erasure
from crm_common.events.inbox import UpsertHandler

from campaign_svc.service import attribution, members
from campaign_svc.settings import Settings


def handlers(settings: Settings) -> dict:
    return {
        **customer_refs.handlers(members.repoint_merged),
        # A customer from no campaign only changes the read model's row (one statement with the inbox).
        "customer.created": UpsertHandler(
            members.created_without_lead, otherwise=members.on_customer_created
        ),
        "customer.updated": members.on_customer_updated,
        # Targets, interactions and conversions hold ids, times and amounts only: the read model's
        # name and the event copies are all there is to scrub.
        "customer.erased": erasure.erased_handler(),
        "opportunity.won": attribution.make_won_handler(settings.attribution_window_days),
    }
