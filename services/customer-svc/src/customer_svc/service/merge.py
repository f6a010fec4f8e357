"""Merging a duplicate (secondary) customer into a primary one, in one transaction."""

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from crm_common import changes as sync_changes
from crm_common.archive import check_not_archived
from crm_common.errors import FieldError
from crm_common.events.outbox import add_events
from crm_common.record_scope import ScopedCaller
from pydantic.alias_generators import to_camel, to_snake
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from customer_svc.events import publish
from customer_svc.models import Customer, CustomerAddress, CustomerOpportunity, CustomerStatus
from customer_svc.schemas import CustomerMergeRequest, MergeField, MergeRule
from customer_svc.service.customers import full_name_of, get_customer, jsonable, name_errors
from customer_svc.service.errors import (
    CustomerAlreadyMerged,
    CustomerNotFound,
    MergeInvalidResult,
    MergeSameCustomer,
)
from customer_svc.service.query import in_scope
from customer_svc.service.reactions import recompute_totals

NOTES_SEPARATOR = "\n\n---\n\n"


def _present(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def _combine(field: MergeField, primary: Any, secondary: Any) -> Any:
    if field == MergeField.tags:
        return list(dict.fromkeys([*(primary or []), *(secondary or [])]))
    return NOTES_SEPARATOR.join(n for n in (primary, secondary) if n) or None


def merged_value(rule: MergeRule, field: MergeField, primary: Customer, secondary: dict[str, Any]) -> Any:
    """The primary's new value of `field` under `rule` (the seed's rules: `secondary` and `latest`
    take the secondary's value only when it is set)."""
    name = to_snake(field.value)
    mine, theirs = getattr(primary, name), secondary[name]
    if rule == MergeRule.SECONDARY:
        return theirs if _present(theirs) else mine
    if rule == MergeRule.LATEST:
        return theirs if secondary["updated_at"] > primary.updated_at and _present(theirs) else mine
    if rule == MergeRule.COMBINE:
        return _combine(field, mine, theirs)
    return mine


def merge_note(primary: Customer, at: datetime) -> str:
    stamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"Merged into customer {primary.customer_number} on {stamp}"


def _not_found(field: str, customer_id: uuid.UUID) -> CustomerNotFound:
    return CustomerNotFound(
        f"Customer {customer_id} does not exist.",
        errors=[FieldError(field=field, message="no such customer", code="not_found")],
    )


async def merge_customers(
    session: AsyncSession, *, data: CustomerMergeRequest, caller: ScopedCaller
) -> tuple[Customer, Customer]:
    """Both customers must be in the caller's read scope (404 otherwise, as if absent) and write
    scope (403)."""
    actor_id = caller.id
    p_id, s_id = data.primary_customer_id, data.secondary_customer_id
    if p_id == s_id:
        raise MergeSameCustomer(
            "A customer cannot be merged into itself.",
            errors=[
                FieldError(field="secondaryCustomerId", message="same as primaryCustomerId", code="same")
            ],
        )
    # Both rows locked, in id order, for the whole merge (two merges of one pair queue up).
    rows = (
        await session.execute(
            sa.select(Customer)
            .where(Customer.id.in_((p_id, s_id)), in_scope(caller))
            .order_by(Customer.id)
            .options(selectinload(Customer.addresses))
            .with_for_update(of=Customer)
            .execution_options(populate_existing=True)
        )
    ).scalars()
    found = {c.id: c for c in rows}
    if p_id not in found:
        raise _not_found("primaryCustomerId", p_id)
    if s_id not in found:
        raise _not_found("secondaryCustomerId", s_id)
    primary, secondary = found[p_id], found[s_id]
    for customer in (primary, secondary):
        caller.check_write(customer.assigned_to_id, customer.team_id)
        check_not_archived(customer, "customer")
    for field, customer in (("primaryCustomerId", primary), ("secondaryCustomerId", secondary)):
        if customer.merged_into_id is not None:
            raise CustomerAlreadyMerged(
                f"Customer {customer.customer_number} was already merged into {customer.merged_into_id}.",
                errors=[FieldError(field=field, message="already merged", code="already_merged")],
            )
    now = datetime.now(UTC)
    theirs = {to_snake(f.value): getattr(secondary, to_snake(f.value)) for f in MergeField}
    theirs["updated_at"] = secondary.updated_at
    their_custom_fields = dict(secondary.custom_fields or {})
    their_last_contact = secondary.last_contact_date

    # 1. The secondary becomes an INACTIVE tombstone first, so its email (now outside the unique
    #    index) may pass to the primary in the same transaction.
    secondary.status = CustomerStatus.INACTIVE
    secondary.merged_into_id = primary.id
    note = merge_note(primary, now)
    secondary.notes = f"{secondary.notes}{NOTES_SEPARATOR}{note}" if secondary.notes else note
    secondary.updated_at = now
    await session.flush()
    await sync_changes.record_deleted(session, "customer", [secondary.id], merged_into=primary.id)

    # 2. Addresses and opportunities move over; the primary keeps its primary address if it has one.
    primary_has_primary = any(a.is_primary for a in primary.addresses)
    await session.execute(
        sa.update(CustomerAddress)
        .where(CustomerAddress.customer_id == secondary.id)
        .values(
            customer_id=primary.id,
            is_primary=sa.false() if primary_has_primary else CustomerAddress.is_primary,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        sa.update(CustomerOpportunity)
        .where(CustomerOpportunity.customer_id == secondary.id)
        .values(customer_id=primary.id)
        .execution_options(synchronize_session=False)
    )
    won = (
        await session.execute(
            sa.select(sa.literal(1))
            .where(CustomerOpportunity.customer_id == primary.id, CustomerOpportunity.status == "WON")
            .limit(1)
        )
    ).first()

    # 3. The primary's fields by rule; custom fields merged with the primary winning conflicts. No
    #    query runs from here to the flush (no autoflush): one UPDATE, one new version.
    changes: dict[str, Any] = {}

    def set_field(name: str, value: Any) -> None:
        if getattr(primary, name) != value:
            setattr(primary, name, value)
            changes[to_camel(name)] = jsonable(value)

    for field, rule in data.merge_rules.items():
        set_field(to_snake(field.value), merged_value(rule, field, primary, theirs))
    set_field("custom_fields", {**their_custom_fields, **(primary.custom_fields or {})})
    if their_last_contact and (
        primary.last_contact_date is None or their_last_contact > primary.last_contact_date
    ):
        set_field("last_contact_date", their_last_contact)
    errors = name_errors(primary.type, primary.first_name, primary.last_name, primary.company_name)
    if errors:
        raise MergeInvalidResult(
            f"The merge rules leave the primary without a name: {errors[0].message}.",
            errors=[FieldError(field="mergeRules", message=errors[0].message, code="invalid_result")],
        )
    set_field(
        "full_name", full_name_of(primary.type, primary.first_name, primary.last_name, primary.company_name)
    )

    if won and primary.status in (CustomerStatus.LEAD, CustomerStatus.PROSPECT):
        set_field("status", CustomerStatus.CUSTOMER)

    primary.updated_at = now
    await session.flush()
    for customer_id in sorted((primary.id, secondary.id)):
        await recompute_totals(session, customer_id)
    await add_events(
        session, publish.customer_merged(primary, secondary, changes=changes, actor_id=actor_id, at=now)
    )
    return await get_customer(session, primary.id), await get_customer(session, secondary.id)
