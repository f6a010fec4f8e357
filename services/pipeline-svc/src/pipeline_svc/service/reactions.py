"""What other contexts' events change in the pipeline (mapped in events/handlers.py). Each runs inside
the inbox transaction, which already drops a redelivered event; they are also idempotent on their own
and tolerate out-of-order delivery."""

import logging
from datetime import UTC, datetime

from crm_common import customer_refs, erasure
from crm_common.contracts.customer import CustomerConverted, CustomerMerged
from crm_common.currencies import ISO_4217
from crm_common.directory import SYSTEM_USER_ID
from crm_common.events.envelope import CloudEvent
from crm_common.events.outbox import add_events
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pipeline_svc.events import publish as events
from pipeline_svc.models import Invoice, Opportunity, OpportunityStage
from pipeline_svc.service.opportunities import change_record, insert_opportunity, stage_names
from pipeline_svc.service.stages import first_open_stage

log = logging.getLogger("pipeline.handlers")


async def on_customer_converted(session: AsyncSession, event: CloudEvent) -> None:
    """The lead became a customer; when the conversion carries an opportunity draft, create that
    opportunity with the id customer-svc assigned (once, however often the event comes)."""
    await customer_refs.on_customer_converted(session, event)
    data = CustomerConverted.model_validate(event.data)
    draft = data.opportunity
    if draft is None or await session.get(Opportunity, draft.opportunity_id) is not None:
        return
    stage = None
    if draft.stage_id is not None:
        stage = await session.get(OpportunityStage, draft.stage_id)
        if stage is None or not stage.is_active or stage.is_won or stage.is_lost:
            log.warning(
                "conversion %s names stage %s, which cannot take it; using the first",
                event.id,
                draft.stage_id,
            )
            stage = None
    if stage is None:
        stage = await first_open_stage(session)
    currency = (draft.currency or "USD").upper()
    if currency not in ISO_4217:
        raise ValueError(
            f"opportunity draft {draft.opportunity_id} has an unknown currency {draft.currency!r}"
        )
    if draft.amount is not None and draft.amount < 0:
        raise ValueError(f"opportunity draft {draft.opportunity_id} has a negative amount")
    if draft.probability is not None and not 0 <= draft.probability <= 100:
        raise ValueError(f"opportunity draft {draft.opportunity_id} has a probability outside 0-100")
    # If the customer was merged away before this event arrived, the opportunity goes to the survivor.
    customer_id = await customer_refs.resolve(session, data.customer_id)
    await insert_opportunity(
        session,
        opportunity_id=draft.opportunity_id,
        stage=stage,
        title=draft.title[:300] or "Opportunity",
        customer_id=customer_id,
        owner_id=draft.owner_id or data.converted_by or SYSTEM_USER_ID,
        actor_id=data.converted_by,
        # A draft without an amount starts at 0 and follows its line items (amountManual false).
        amount=draft.amount,
        probability=draft.probability,
        description=draft.description,
        currency=currency,
        expected_close_date=draft.expected_close_date,
    )


async def repoint(session: AsyncSession, moves: customer_refs.Moves, event: CloudEvent) -> None:
    """A merge moved customers to another survivor: their opportunities and invoices follow. Each
    re-pointed opportunity gets a new version and an `opportunity.updated` (customerId changed), so
    consumers keeping per-customer totals move it too."""
    data = CustomerMerged.model_validate(event.data)
    now = datetime.now(UTC)
    for old, survivor in moves.items():
        moved = list(
            (
                await session.execute(
                    select(Opportunity)
                    .where(Opportunity.customer_id == old)
                    .order_by(Opportunity.created_at)
                    .with_for_update()
                )
            ).scalars()
        )
        for opportunity in moved:
            opportunity.customer_id = survivor
            opportunity.updated_at = now
        if moved:
            await session.flush()
            names = await stage_names(session, {o.stage_id for o in moved})
            await add_events(
                session,
                *(
                    events.opportunity_updated(
                        o,
                        names.get(o.stage_id, ""),
                        changes=change_record({"customer_id": survivor}),
                        by=data.merged_by,
                    )
                    for o in moved
                ),
            )
        invoices = await session.execute(
            update(Invoice)
            .where(Invoice.customer_id == old)
            .values(customer_id=survivor, updated_at=now, version=Invoice.version + 1)
            .returning(Invoice.id, Invoice.version)
            .execution_options(synchronize_session=False)
        )
        await add_events(session, *(events.invoice_repointed(i, v, old, survivor) for i, v in invoices.all()))


async def scrub_erased_customer(session: AsyncSession, customer_id) -> set[str]:
    """customer.erased: the free text of the customer's opportunities and invoices goes (titles often
    name the person); amounts, currencies, stages, dates and line items stay, so the forecast, the
    board and the customer's totals do not move."""
    now = datetime.now(UTC)
    removed = await erasure.scrub_columns(
        session,
        Opportunity,
        Opportunity.customer_id == customer_id,
        text=("title", "description", "lost_reason"),
        json=("custom_fields",),
        also={"version": Opportunity.version + 1, "updated_at": now},
    )
    removed |= await erasure.scrub_columns(
        session,
        Invoice,
        Invoice.customer_id == customer_id,
        text=("notes",),
        also={"version": Invoice.version + 1, "updated_at": now},
    )
    return removed
