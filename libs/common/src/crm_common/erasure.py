"""Erasing a person (GDPR art. 17), the same way in every context.

customer-svc scrubs the customer and publishes `customer.erased` (no personal data in it). Every
context that consumes it runs `erased_handler(scrub)`: its own `scrub` hook replaces the free text
and contact data it holds about that customer (with `scrub_columns`), the shared customer read model
forgets the name, and `scrub_event_store` cleans the copies of that data sitting in the service's
event tables and stored idempotent responses. Ids, amounts, counts and dates stay, so aggregates do
not change.

Event tables (docs/privacy.md says the same to users):
- outbox rows already published (or unroutable, or failed) that mention the customer or one of the
  scrubbed values are deleted: they were delivered, and only a replay would read them again;
- outbox rows still pending are rewritten in place, each scrubbed value replaced by `ERASED`, so
  consumers still get the event (its ids and amounts) without the personal data;
- dead letters mentioning the customer or a value are deleted (they can no longer be replayed);
- stored idempotent responses containing a value are deleted (a retry with that key runs again);
- the inbox holds event ids and types only: nothing to do.
"""

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import customer_refs
from crm_common.contracts.customer import CustomerErased
from crm_common.events.dead_letters import dead_letters
from crm_common.events.envelope import CloudEvent
from crm_common.events.tables import outbox
from crm_common.idempotency_store import keys as idempotency_keys

# Where a service answers what it holds about one customer, for the gateway's GDPR art. 15 export
# (crm_gateway.privacy): admin only, not routed by the gateway, not in the OpenAPI document.
PERSONAL_DATA_PATH = "/internal/customers/{customer_id}/personal-data"

# An erased customer's email: the column is required and unique, so it gets one that names no one and
# never delivers (`.invalid` is reserved, RFC 2606). Before `erased_at` existed it was the only marker
# of an erased customer (the migration adding the column recognises them by it).
ERASED_EMAIL_DOMAIN = "erased.invalid"

# What a scrubbed text reads afterwards (also the name of an erased customer).
ERASED = "[erased]"
# Shorter strings (an initial, "Mr") would match everywhere and identify no one.
MIN_VALUE_LENGTH = 3

# A service's hook: scrub what it holds about the customer, return the values it removed.
Scrub = Callable[[AsyncSession, uuid.UUID], Awaitable[set[str]]]


def rows_as_json(rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Table rows (SQLModel objects) as camelCase JSON objects, every column, for an export."""
    from fastapi.encoders import jsonable_encoder
    from pydantic.alias_generators import to_camel

    out = []
    for row in rows:
        columns = row.__table__.columns.keys()
        out.append({to_camel(c): jsonable_encoder(getattr(row, c)) for c in columns})
    return out


def values_of(*found: Any) -> set[str]:
    """The personal strings inside the given values (strings, lists and dicts, nested)."""
    out: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value.strip()) >= MIN_VALUE_LENGTH and value != ERASED:
                out.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)

    for value in found:
        walk(value)
    return out


async def scrub_columns(
    session: AsyncSession,
    table: Any,
    where: Any,
    *,
    text: Iterable[str] = (),
    json: Iterable[str] = (),
    also: Mapping[str, Any] | None = None,
) -> set[str]:
    """Replace the `text` columns (by ERASED, when set) and empty the `json` columns (list or dict, as
    they were) of the rows of `table` (a Table or an ORM model) matching `where`; `also` is set on
    each changed row (a new version and updated_at, so incremental sync sees the change). Returns
    the values removed, for `scrub_event_store`."""
    table = getattr(table, "__table__", table)
    text, json = list(text), list(json)
    pk = list(table.primary_key.columns)
    rows = (await session.execute(sa.select(*pk, *(table.c[c] for c in text + json)).where(where))).all()
    removed: set[str] = set()
    for row in rows:
        data = row._mapping
        removed |= values_of(*(data[c] for c in text + json))
        values: dict[str, Any] = {c: ERASED for c in text if data[c] is not None}
        values |= {c: [] if isinstance(data[c], list) else {} for c in json if data[c]}
        if values:
            values |= dict(also or {})
            await session.execute(
                sa.update(table).where(*(col == data[col.name] for col in pk)).values(**values)
            )
    return removed


def _replace(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, ERASED)
        return value
    if isinstance(value, dict):
        return {k: _replace(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, secrets) for v in value]
    return value


def mentions(column: Any, needles: Iterable[str]) -> Any:
    """The JSON column's text contains one of the needles (as written, or as JSON escapes it)."""
    as_text = sa.cast(column, sa.Text)
    patterns = {p for n in needles for p in (n, json.dumps(n)[1:-1])}
    return sa.or_(*(as_text.contains(p, autoescape=True) for p in patterns))


async def scrub_event_store(session: AsyncSession, *, customer_id: uuid.UUID, values: set[str]) -> None:
    """Clean the service's outbox, dead letters and stored idempotent responses (module docstring)."""
    needles = {str(customer_id), *values}
    # Longest first, so a value containing another is replaced whole.
    secrets = sorted(values, key=len, reverse=True)
    mentioning = mentions(outbox.c.payload, needles)
    await session.execute(sa.delete(outbox).where(mentioning, outbox.c.state != "PENDING"))
    pending = await session.execute(
        sa.select(outbox.c.position, outbox.c.payload).where(mentioning, outbox.c.state == "PENDING")
    )
    for position, payload in pending.all():
        await session.execute(
            sa.update(outbox).where(outbox.c.position == position).values(payload=_replace(payload, secrets))
        )
    await session.execute(sa.delete(dead_letters).where(mentions(dead_letters.c.payload, needles)))
    if values:
        stored = await session.execute(
            sa.select(idempotency_keys.c.principal, idempotency_keys.c.key, idempotency_keys.c.body).where(
                idempotency_keys.c.body.is_not(None)
            )
        )
        for principal, key, body in stored.all():
            text = bytes(body).decode("utf-8", "replace")
            if any(n in text for n in needles):
                await session.execute(
                    sa.delete(idempotency_keys).where(
                        idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
                    )
                )


async def forget_customer_name(session: AsyncSession, customer_id: uuid.UUID, *, version: int) -> set[str]:
    """The shared customer read model keeps the id, number and status, not the name; at the erasure's
    version, so an older event arriving late does not bring the name back."""
    row = await customer_refs.get(session, customer_id)
    if row is None:
        return set()
    refs = customer_refs.refs
    await session.execute(
        sa.update(refs)
        .where(refs.c.id == customer_id)
        .values(full_name=ERASED, version=sa.case((refs.c.version < version, version), else_=refs.c.version))
    )
    return values_of(row.full_name)


def erased_handler(scrub: Scrub | None = None) -> Callable[[AsyncSession, CloudEvent], Awaitable[None]]:
    """The `customer.erased` handler of a context: its own `scrub` hook, the read model, the event
    tables. Idempotent: a second run finds nothing left to scrub."""

    async def on_customer_erased(session: AsyncSession, event: CloudEvent) -> None:
        data = CustomerErased.model_validate(event.data)
        removed = await scrub(session, data.customer_id) if scrub is not None else set()
        removed |= await forget_customer_name(session, data.customer_id, version=event.sequence or 1)
        await scrub_event_store(session, customer_id=data.customer_id, values=removed)

    return on_customer_erased
