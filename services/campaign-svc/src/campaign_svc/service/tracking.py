"""Tracking: interaction batches move members forward; the campaign's counters are recounted from
the members' step timestamps in the same transaction, so they never disagree with them."""

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import sqlalchemy as sa
from crm_common import customer_refs
from crm_common.db import insert_for
from crm_common.errors import FieldError
from sqlalchemy.ext.asyncio import AsyncSession

from campaign_svc.models import Campaign, CampaignInteraction, CampaignStatus, CampaignTarget
from campaign_svc.schemas import InteractionInput
from campaign_svc.service.errors import CampaignNotRunning, InteractionBatchTooLarge, InvalidInteractions

# Funnel steps an interaction implies (a click means the message was sent, delivered and opened).
IMPLIES: dict[str, tuple[str, ...]] = {
    "SENT": ("sent_at",),
    "DELIVERED": ("sent_at", "delivered_at"),
    "BOUNCED": ("sent_at", "bounced_at"),
    "OPENED": ("sent_at", "delivered_at", "opened_at"),
    "CLICKED": ("sent_at", "delivered_at", "opened_at", "clicked_at"),
    "RESPONDED": ("sent_at", "delivered_at", "opened_at", "responded_at"),
    "UNSUBSCRIBED": ("sent_at", "delivered_at", "unsubscribed_at"),
}
STEP_FIELDS = (
    "sent_at",
    "delivered_at",
    "bounced_at",
    "opened_at",
    "clicked_at",
    "responded_at",
    "unsubscribed_at",
)
# Furthest first: the status is the furthest step reached.
STATUS_ORDER = (
    ("converted_at", "CONVERTED"),
    ("unsubscribed_at", "UNSUBSCRIBED"),
    ("responded_at", "RESPONDED"),
    ("clicked_at", "CLICKED"),
    ("opened_at", "OPENED"),
    ("delivered_at", "DELIVERED"),
    ("bounced_at", "BOUNCED"),
    ("sent_at", "SENT"),
)
CLOCK_SKEW = timedelta(minutes=5)
_targets = CampaignTarget.__table__
TARGET_COLUMNS = [
    _targets.c.id,
    _targets.c.customer_id,
    _targets.c.status,
    *(getattr(_targets.c, f) for f in STEP_FIELDS),
    _targets.c.converted_at,
    _targets.c.last_interaction_at,
    _targets.c.updated_at,
]
WRITTEN = ("status", *STEP_FIELDS, "last_interaction_at", "updated_at")
UPDATE_TARGET = (
    _targets.update()
    .where(_targets.c.id == sa.bindparam("target_id"))
    .values({f: sa.bindparam(f"v_{f}") for f in WRITTEN})
)
CHUNK = 500


def status_of(target: CampaignTarget) -> str:
    for field, status in STATUS_ORDER:
        if getattr(target, field) is not None:
            return status
    return "TARGETED"


async def recount(session: AsyncSession, campaign_id: uuid.UUID) -> None:
    """Counters = members that reached each step (each member counted once per step)."""
    t = CampaignTarget
    row = (
        await session.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(t.sent_at),
                sa.func.count(t.delivered_at),
                sa.func.count(t.bounced_at),
                sa.func.count(t.opened_at),
                sa.func.count(t.clicked_at),
                sa.func.count(t.responded_at),
                sa.func.count(t.unsubscribed_at),
                sa.func.count(t.converted_at),
            ).where(t.campaign_id == campaign_id)
        )
    ).one()
    names = (
        "target_count",
        "sent_count",
        "delivered_count",
        "bounced_count",
        "open_count",
        "click_count",
        "response_count",
        "unsubscribed_count",
        "conversion_count",
    )
    await session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(dict(zip(names, row, strict=True)))
        .execution_options(synchronize_session=False)
    )


COUNTER_OF = {
    "sent_at": "sent_count",
    "delivered_at": "delivered_count",
    "bounced_at": "bounced_count",
    "opened_at": "open_count",
    "clicked_at": "click_count",
    "responded_at": "response_count",
    "unsubscribed_at": "unsubscribed_count",
    "converted_at": "conversion_count",
}


async def add_to_counters(session: AsyncSession, campaign_id: uuid.UUID, reached: dict[str, int]) -> None:
    """Members that newly reached a step (its time went from unset to set, which happens once per
    member and step) under the campaign's row lock: the same numbers `recount` would find, without
    scanning every member of a big campaign on each batch."""
    if not reached:
        return
    await session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign_id)
        .values({COUNTER_OF[f]: getattr(Campaign, COUNTER_OF[f]) + n for f, n in reached.items()})
        .execution_options(synchronize_session=False)
    )


async def record_interactions(
    session: AsyncSession, campaign: Campaign, items: list[InteractionInput], *, limit: int
) -> tuple[int, int, int]:
    """All or nothing: any bad item is a 422 listing every bad item. Returns (recorded, duplicates,
    members whose status changed). The caller holds the campaign's row lock."""
    if len(items) > limit:
        raise InteractionBatchTooLarge(
            f"A batch holds at most {limit} interactions; this one has {len(items)}.",
            extra={"limit": limit},
        )
    if campaign.status in (CampaignStatus.PLANNING, CampaignStatus.CANCELLED):
        raise CampaignNotRunning(f"A {campaign.status} campaign does not take interactions.")
    survivors = await customer_refs.survivors(session, {i.customer_id for i in items})
    customer_ids = {survivors.get(i.customer_id, i.customer_id) for i in items}
    # Plain rows, written back in one executemany: a batch touches up to `limit` members.
    targets: dict[uuid.UUID, SimpleNamespace] = {}
    ids = list(customer_ids)
    for part in [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]:
        rows = await session.execute(
            sa.select(*TARGET_COLUMNS).where(
                CampaignTarget.campaign_id == campaign.id, CampaignTarget.customer_id.in_(part)
            )
        )
        targets.update({t.customer_id: SimpleNamespace(**t._mapping) for t in rows})
    now = datetime.now(UTC)
    latest = min(campaign.end_date, now + CLOCK_SKEW) if campaign.end_date else now + CLOCK_SKEW
    errors: list[FieldError] = []
    for n, item in enumerate(items):
        if survivors.get(item.customer_id, item.customer_id) not in targets:
            errors.append(
                FieldError(
                    field=f"interactions.{n}.customerId",
                    message="not a target of this campaign",
                    code="not_a_target",
                )
            )
        if (campaign.start_date and item.occurred_at < campaign.start_date) or item.occurred_at > latest:
            errors.append(
                FieldError(
                    field=f"interactions.{n}.occurredAt",
                    message="outside the campaign's start and end (or in the future)",
                    code="outside_campaign",
                )
            )
    if errors:
        raise InvalidInteractions(
            f"{len(errors)} problem(s) in the batch; nothing was recorded.",
            errors=errors,
        )
    # Dedupe by external id: repeated within this batch (the first one counts), or already recorded,
    # which the unique index answers as the rows go in. (A SELECT of the known ids first was planned
    # as a scan while the table was young and its statistics stale: 100-150 ms per batch and growing.)
    first: dict[str, InteractionInput] = {}
    for item in items:
        first.setdefault(item.external_id, item)
    rows = [
        {
            "id": uuid.uuid4(),
            "campaign_id": campaign.id,
            "customer_id": survivors.get(item.customer_id, item.customer_id),
            "kind": item.kind,
            "occurred_at": item.occurred_at,
            "external_id": item.external_id,
            "recorded_at": now,
        }
        for item in first.values()
    ]
    inserted: set[str] = set()
    for part in [rows[i : i + 1000] for i in range(0, len(rows), 1000)]:
        statement = (
            insert_for(session, CampaignInteraction)
            .values(part)
            .on_conflict_do_nothing(index_elements=["campaign_id", "external_id"])
            .returning(CampaignInteraction.external_id)
        )
        inserted.update((await session.execute(statement)).scalars())
    fresh = [item for item in first.values() if item.external_id in inserted]
    changed: set[uuid.UUID] = set()
    dirty: dict[uuid.UUID, SimpleNamespace] = {}
    reached: dict[str, int] = {}
    for item in fresh:
        cid = survivors.get(item.customer_id, item.customer_id)
        target = targets[cid]
        before = target.status
        touched = False
        for field in IMPLIES[item.kind]:
            current = getattr(target, field)
            if current is None or item.occurred_at < current:
                if current is None:
                    reached[field] = reached.get(field, 0) + 1
                setattr(target, field, item.occurred_at)
                touched = True
        if target.last_interaction_at is None or item.occurred_at > target.last_interaction_at:
            target.last_interaction_at = item.occurred_at
            touched = True
        if touched:
            target.status = status_of(target)
            target.updated_at = now
            dirty[cid] = target
        if target.status != before:
            changed.add(cid)
    if dirty:
        await session.execute(
            UPDATE_TARGET,
            [{"target_id": t.id, **{f"v_{f}": getattr(t, f) for f in WRITTEN}} for t in dirty.values()],
        )
    if reached:
        await add_to_counters(session, campaign.id, reached)
    return len(fresh), len(items) - len(fresh), len(changed)
