"""Handlers for the events campaign-svc consumes (listed under "campaign" in
crm_common.events.catalogue.SUBSCRIPTIONS). Each runs inside the inbox transaction."""

from campaign_svc.service import attribution, members
from campaign_svc.settings import Settings


def handlers(settings: Settings) -> dict:
    return {
        "customer.created": members.on_customer_created,
        "customer.updated": members.on_customer_updated,
        "customer.merged": members.on_customer_merged,
        "opportunity.won": attribution.make_won_handler(settings.attribution_window_days),
    }
