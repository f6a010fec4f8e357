"""The customers a context knows of, kept from customer-svc's `customer.*` events: one table and one
set of rules for every service that references customers (pipeline, activity, ticket, campaign).

Rules (the same everywhere, so one event history leaves the same state in every service):

- Version: a customer's data (number, name, status, priority, source campaign) is applied only from a
  strictly newer version (the event's `sequence`, i.e. the customer's version) than the one stored.
  A redelivered or late event changes nothing. A row created from a merge event or a lookup miss
  carries version 0 (or the version read from customer-svc), so any real event overrides it.
- Merge edges: `customer.merged` records `secondary.merged_into_id = primary`. Should one secondary
  be named in two merges (bad data), the edge of the newer merge (the primary's version) stays, ties
  to the smaller primary id: the stored edge does not depend on delivery order.
- Survivor: follow the edges at most `MAX_MERGE_HOPS`; when the path closes a cycle, the smallest id
  on the cycle survives. The edges do not depend on delivery order, so neither does the survivor.
- A write naming a merged customer is redirected to the survivor (never refused), in every service.
- Owner (record scopes): the customer's assignee and team, from the `owner` the events carry
  (customer.created/updated/converted, a merge's `primaryOwner`, and customer.assigned), under the
  same version rule. `owner_known` is false for a row whose owner was never carried (a row from
  before the owner columns, one created from a merge or a segment in passing): its assignee and team
  are then not to be trusted. Each use says what it does with such a row (`owner_in_scope`): ask
  customer-svc (campaign targets), or keep the rule that held before (invoices follow their creator).

Each service passes a `repoint(session, moves, event)` hook to `merged_handler`: `moves` maps every
customer whose survivor the merge changed to its new survivor, and the hook moves its own rows.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import customer_lookup
from crm_common.contracts.customer import (
    CustomerAssigned,
    CustomerConverted,
    CustomerCreated,
    CustomerMerged,
    CustomerOwner,
    CustomerUpdated,
)
from crm_common.db import insert_for
from crm_common.errors import FieldError, ProblemError
from crm_common.events.envelope import CloudEvent
from crm_common.events.inbox import EventHandler, Upsert, UpsertHandler
from crm_common.models import UtcDateTime
from crm_common.sql_types import AnyRow

if TYPE_CHECKING:
    from crm_common.record_scope import RecordScope

MAX_MERGE_HOPS = 32

metadata = sa.MetaData()

refs = sa.Table(
    "customer_refs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("customer_number", sa.String(32)),
    sa.Column("full_name", sa.String(300)),
    sa.Column("status", sa.String(20)),
    sa.Column("priority", sa.String(16)),
    sa.Column("source_campaign_id", sa.Uuid()),
    sa.Column("merged_into_id", sa.Uuid(), index=True),
    sa.Column("merge_version", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("assigned_to_id", sa.Uuid(), index=True),
    sa.Column("team_id", sa.Uuid(), index=True),
    sa.Column("owner_known", sa.Boolean(), nullable=False, server_default=sa.false()),
)

DATA_FIELDS = ("customer_number", "full_name", "status", "priority", "source_campaign_id")
OWNER_FIELDS = ("assigned_to_id", "team_id", "owner_known")


# --- migration -----------------------------------------------------------------------------------


def create_customer_refs_v1(*, carry_from: str | None = None, columns: Mapping[str, str] = {}) -> None:
    """For a service's migration. A frozen snapshot: later changes get their own `_v2`.

    `carry_from` names the service's old read-model table: its rows are copied (`columns` maps each
    new column to an SQL expression over the old table) and the old table is dropped. An old table
    already called `customer_refs` is renamed out of the way first."""
    old = carry_from
    if old == "customer_refs":
        op.drop_index("ix_customer_refs_merged_into_id", table_name="customer_refs")
        op.rename_table("customer_refs", "customer_refs_v0")
        old = "customer_refs_v0"
    op.create_table(
        "customer_refs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("customer_number", sa.String(32)),
        sa.Column("full_name", sa.String(300)),
        sa.Column("status", sa.String(20)),
        sa.Column("priority", sa.String(16)),
        sa.Column("source_campaign_id", sa.Uuid()),
        sa.Column("merged_into_id", sa.Uuid()),
        sa.Column("merge_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_customer_refs_merged_into_id", "customer_refs", ["merged_into_id"])
    if old is not None:
        names = ", ".join(columns)
        exprs = ", ".join(columns.values())
        op.execute(f"INSERT INTO customer_refs ({names}) SELECT {exprs} FROM {old}")
        op.drop_table(old)


def drop_customer_refs_v1(
    *,
    restore: str | None = None,
    columns: Sequence[sa.Column[Any]] = (),
    copy: Mapping[str, str] = {},
    index: str | None = None,
) -> None:
    """Downgrade: give the rows back to the service's old table (`restore`, made of `columns`,
    indexed on merged_into_id under `index`; `copy` maps each old column to an SQL expression over
    customer_refs), then drop customer_refs."""
    name = restore
    if restore is not None:
        name = f"{restore}_v0" if restore == "customer_refs" else restore
        op.create_table(name, *columns)
        op.execute(
            f"INSERT INTO {name} ({', '.join(copy)}) SELECT {', '.join(copy.values())} FROM customer_refs"
        )
    op.drop_index("ix_customer_refs_merged_into_id", table_name="customer_refs")
    op.drop_table("customer_refs")
    if restore is None:
        return
    if name != restore:
        op.rename_table(f"{restore}_v0", restore)
    if index is not None:
        op.create_index(index, restore, ["merged_into_id"])


def create_customer_refs_v2() -> None:
    """For a service's migration, after v1. A frozen snapshot: the owner columns (assignee, team,
    whether they are known). Existing rows get `owner_known` false: nothing in this service's database
    says who owns them; the next event about the customer (or a lookup at customer-svc) fills them."""
    op.add_column("customer_refs", sa.Column("assigned_to_id", sa.Uuid(), nullable=True))
    op.add_column("customer_refs", sa.Column("team_id", sa.Uuid(), nullable=True))
    op.add_column(
        "customer_refs",
        sa.Column("owner_known", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_customer_refs_assigned_to_id", "customer_refs", ["assigned_to_id"])
    op.create_index("ix_customer_refs_team_id", "customer_refs", ["team_id"])


def drop_customer_refs_v2() -> None:
    """Downgrade of create_customer_refs_v2 (plain drops: a batch rebuild on SQLite would lose the
    table's other indexes' names)."""
    op.drop_index("ix_customer_refs_team_id", table_name="customer_refs")
    op.drop_index("ix_customer_refs_assigned_to_id", table_name="customer_refs")
    op.drop_column("customer_refs", "owner_known")
    op.drop_column("customer_refs", "team_id")
    op.drop_column("customer_refs", "assigned_to_id")


# --- applying events -----------------------------------------------------------------------------


def _insert(session: AsyncSession) -> postgresql.Insert | sqlite.Insert:
    return insert_for(session, refs)


def state_upsert(customer_id: uuid.UUID, *, version: int, **data: Any) -> Upsert:
    """The customer as of `version`: inserted, or applied over what is stored when strictly newer.
    Only the fields given change (an update that does not mention the priority keeps it)."""
    data = {k: v for k, v in data.items() if k in DATA_FIELDS or k in OWNER_FIELDS}
    return Upsert(
        refs, {"id": customer_id, **data, "version": version, "updated_at": datetime.now(UTC)}, _newer_only
    )


async def apply_state(session: AsyncSession, customer_id: uuid.UUID, *, version: int, **data: Any) -> None:
    await state_upsert(customer_id, version=version, **data).execute(session)


def _newer_only(stmt: postgresql.Insert | sqlite.Insert, columns: tuple[str, ...]) -> sa.Insert:
    """The upsert's conflict rule: the given columns change only from a strictly newer version."""
    newer = refs.c.version < stmt.excluded.version
    if "owner_known" in columns:
        # A row whose owner was never carried takes it from the same version too (a lookup of a
        # customer last heard of by an event older than the owner field).
        newer = sa.or_(newer, sa.and_(refs.c.version == stmt.excluded.version, sa.not_(refs.c.owner_known)))
    return stmt.on_conflict_do_update(
        index_elements=["id"], set_={k: stmt.excluded[k] for k in columns if k != "id"}, where=newer
    )


async def ensure(session: AsyncSession, customer_id: uuid.UUID, **data: Any) -> None:
    """Know a customer only heard of in passing (version 0: any real event overrides it)."""
    data = {k: v for k, v in data.items() if k in DATA_FIELDS}
    stmt = _insert(session).values(id=customer_id, **data, version=0, updated_at=datetime.now(UTC))
    await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


async def ensure_many(session: AsyncSession, customers: Mapping[uuid.UUID, Mapping[str, Any]]) -> None:
    """`ensure` for many customers at once ({id: data}), e.g. the members of a segment."""
    now = datetime.now(UTC)
    items = [
        {"id": cid, **{f: data.get(f) for f in DATA_FIELDS}, "version": 0, "updated_at": now}
        for cid, data in customers.items()
    ]
    for i in range(0, len(items), 500):
        stmt = _insert(session).values(items[i : i + 500])
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))


def _version(event: CloudEvent) -> int:
    return event.sequence or 1


def _owner(owner: CustomerOwner | None) -> dict[str, Any]:
    """The owner columns an event sets: none when it does not carry the owner (an older event)."""
    if owner is None:
        return {}
    return {"assigned_to_id": owner.assigned_to_id, "team_id": owner.team_id, "owner_known": True}


async def created_upsert(event: CloudEvent) -> Upsert:
    return _created_upsert(event, CustomerCreated.model_validate(event.data))


async def apply_created(session: AsyncSession, event: CloudEvent) -> bool:
    """customer.created, applied in a transaction of the caller's. True when this wrote the
    customer's row and it is merged into nobody: the customer then stands for itself, and its row
    stays locked to the end of the transaction (a merge of it waits), so the caller needs no
    `resolve` to know where a record about it belongs."""
    upsert = replace(
        _created_upsert(event, CustomerCreated.model_validate(event.data)), conflict=_newer_only_telling_merge
    )
    written = (await upsert.execute(session)).first()
    return written is not None and written.merged_into_id is None


def _newer_only_telling_merge(stmt: postgresql.Insert | sqlite.Insert, columns: tuple[str, ...]) -> sa.Insert:
    """`_newer_only`, returning the merge edge of the row it wrote (no row when it wrote none)."""
    return _newer_only(stmt, columns).returning(refs.c.merged_into_id)


def _created_upsert(event: CloudEvent, data: CustomerCreated) -> Upsert:
    return state_upsert(
        data.customer_id,
        version=_version(event),
        customer_number=data.customer_number,
        full_name=data.full_name,
        status=data.status,
        priority=data.priority,
        source_campaign_id=data.source_campaign_id,
        **_owner(data.owner),
    )


def _from_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Fields a partial change (customer.updated's `changes`, a merge's `primaryChanges`) carries."""
    found: dict[str, Any] = {}
    if changes.get("status"):
        found["status"] = changes["status"]
    if changes.get("priority"):
        found["priority"] = changes["priority"]
    if changes.get("sourceCampaignId"):
        found["source_campaign_id"] = uuid.UUID(str(changes["sourceCampaignId"]))
    return found


async def _updated(event: CloudEvent) -> Upsert:
    data = CustomerUpdated.model_validate(event.data)
    return state_upsert(
        data.customer_id,
        version=_version(event),
        **{
            **_from_changes(data.changes),
            "customer_number": data.customer_number,
            "full_name": data.full_name,
            "status": data.status,
            **_owner(data.owner),
        },
    )


async def _converted(event: CloudEvent) -> Upsert:
    data = CustomerConverted.model_validate(event.data)
    return state_upsert(
        data.customer_id,
        version=_version(event),
        customer_number=data.customer_number,
        full_name=data.full_name,
        status=data.status,
        **_owner(data.owner),
    )


async def _assigned(event: CloudEvent) -> Upsert:
    data = CustomerAssigned.model_validate(event.data)
    return state_upsert(
        data.customer_id,
        version=_version(event),
        customer_number=data.customer_number,
        full_name=data.full_name,
        **_owner(CustomerOwner(assigned_to_id=data.assigned_to_id, team_id=data.team_id)),
    )


# Each of these changes one customer_refs row: the inbox runs it with its claim (UpsertHandler).
on_customer_created = UpsertHandler(created_upsert)
on_customer_updated = UpsertHandler(_updated)
on_customer_converted = UpsertHandler(_converted)
on_customer_assigned = UpsertHandler(_assigned)


Moves = dict[uuid.UUID, uuid.UUID]
Repoint = Callable[[AsyncSession, Moves, CloudEvent], Awaitable[None]]


async def apply_merge(session: AsyncSession, event: CloudEvent) -> Moves:
    """Record the merge; returns {customer: its new survivor} for every customer whose survivor the
    merge changed (the customers whose merge chain passes through the secondary)."""
    data = CustomerMerged.model_validate(event.data)
    primary, secondary, version = data.primary_customer_id, data.secondary_customer_id, _version(event)
    if primary == secondary:
        return {}
    await ensure(
        session, secondary, customer_number=data.secondary_customer_number, full_name=data.secondary_full_name
    )
    await apply_state(
        session,
        primary,
        version=version,
        **{
            **_from_changes(data.primary_changes),
            "customer_number": data.primary_customer_number,
            "full_name": data.primary_full_name,
            **_owner(data.primary_owner),
        },
    )
    current = (
        await session.execute(
            sa.select(refs.c.merged_into_id, refs.c.merge_version)
            .where(refs.c.id == secondary)
            .with_for_update()
        )
    ).one()
    if current.merged_into_id is not None and not _newer(
        version, primary, current.merge_version, current.merged_into_id
    ):
        return {}  # a redelivery, or an older conflicting merge: the stored edge stays
    before = await _affected(session, secondary)
    await session.execute(
        sa.update(refs)
        .where(refs.c.id == secondary)
        .values(merged_into_id=primary, merge_version=version, updated_at=datetime.now(UTC))
    )
    # Rows sit on the survivor they were written for; every customer passing through the secondary
    # (and the survivor they had) may now have another one.
    moves: Moves = {}
    for customer in {*before, *before.values()}:
        survivor = await resolve(session, customer)
        if survivor != customer:
            moves[customer] = survivor
    return moves


def _newer(version: int, primary: uuid.UUID, old_version: int, old_primary: uuid.UUID) -> bool:
    """Whether a merge edge replaces the stored one: a newer merge, or at the same version the
    smaller primary id (so two conflicting edges end the same whatever came first)."""
    if version != old_version:
        return version > old_version
    return primary.int < old_primary.int


async def _affected(session: AsyncSession, secondary: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """{customer: current survivor} for the secondary and every customer merged (through a chain)
    into it: the ones a new edge out of the secondary can move."""
    found = {secondary}
    frontier = {secondary}
    for _ in range(MAX_MERGE_HOPS):
        rows = await session.execute(sa.select(refs.c.id).where(refs.c.merged_into_id.in_(frontier)))
        frontier = {row.id for row in rows} - found
        if not frontier:
            break
        found |= frontier
    return {customer: await resolve(session, customer) for customer in found}


def merged_handler(repoint: Repoint | None = None) -> EventHandler:
    """The `customer.merged` handler of a service: records the merge, then lets the service move its
    own rows (`repoint(session, {old customer: survivor}, event)`)."""

    async def on_customer_merged(session: AsyncSession, event: CloudEvent) -> None:
        moves = await apply_merge(session, event)
        if moves and repoint is not None:
            await repoint(session, moves, event)

    return on_customer_merged


async def on_customer_purged(session: AsyncSession, event: CloudEvent) -> None:
    """An archived customer was deleted after the archive retention (crm_common.archive): forgotten
    here, as after a deletion, so a write naming it asks customer-svc and is refused (422
    UNKNOWN_CUSTOMER). The context's own records keep the id (their customer name reads empty)."""
    await session.execute(
        sa.delete(refs).where(
            refs.c.id == uuid.UUID(str(event.data["customerId"])), refs.c.version < _version(event)
        )
    )


def handlers(repoint: Repoint | None = None) -> dict[str, EventHandler]:
    return {
        "customer.created": on_customer_created,
        "customer.updated": on_customer_updated,
        "customer.converted": on_customer_converted,
        "customer.assigned": on_customer_assigned,
        "customer.merged": merged_handler(repoint),
        "customer.purged": on_customer_purged,
    }


# --- reading -------------------------------------------------------------------------------------


async def resolve(session: AsyncSession, customer_id: uuid.UUID, *, lock: bool = False) -> uuid.UUID:
    """The customer that stands for `customer_id` now: the end of its merge chain, or on a cycle the
    smallest id of the cycle. `lock` share-locks each row on the way (Postgres; SQLite writers are
    serial), so a merge committing meanwhile either came before and is followed, or waits for this
    transaction and then re-points what it wrote."""
    query = sa.select(refs.c.merged_into_id).where(refs.c.id == sa.bindparam("id"))
    if lock:
        query = query.with_for_update(read=True)
    path = [customer_id]
    current = customer_id
    for _ in range(MAX_MERGE_HOPS):
        target = (await session.execute(query, {"id": current})).scalar_one_or_none()
        if target is None:
            return current
        if target in path:
            return min(path[path.index(target) :], key=lambda i: i.int)
        path.append(target)
        current = target
    return current


async def get(session: AsyncSession, customer_id: uuid.UUID) -> AnyRow | None:
    """The stored row (or None), as a Row with the table's columns."""
    return (await session.execute(sa.select(refs).where(refs.c.id == customer_id))).first()


def unknown_customer(customer_id: uuid.UUID, *, field: str) -> ProblemError:
    return ProblemError(
        422,
        "UNKNOWN_CUSTOMER",
        f"Customer {customer_id} does not exist.",
        errors=[FieldError(field=field, message="unknown customer", code="unknown_customer")],
    )


async def require(session: AsyncSession, customer_id: uuid.UUID, *, field: str) -> AnyRow:
    """The customer a write names, redirected to its survivor when it was merged: the survivor's row.
    A customer not heard of yet is looked up at customer-svc (crm_common.customer_lookup) and
    recorded at the version read: 422 UNKNOWN_CUSTOMER only when customer-svc says it does not
    exist (or, in a service running without customer-svc configured, when it is not known here),
    503 CUSTOMER_SERVICE_UNAVAILABLE when customer-svc cannot be asked."""
    if await get(session, customer_id) is None:
        await learn(session, customer_id, field=field)
    survivor = await resolve(session, customer_id, lock=True)
    row = await get(session, survivor)
    if row is None:  # a merge named a primary not heard of yet: customer-svc knows it
        await learn(session, survivor, field=field)
        row = await get(session, survivor)
    assert row is not None, "learn() records the customer or raises"
    return row


async def learn(session: AsyncSession, customer_id: uuid.UUID, *, field: str, hops: int = 0) -> None:
    """Ask customer-svc about a customer and record it (and where it was merged to)."""
    lookup, authorization = customer_lookup.current()
    if lookup is None:
        raise unknown_customer(customer_id, field=field)
    try:
        data = await lookup.fetch(customer_id, authorization=authorization)
    except customer_lookup.CustomerServiceUnavailable:
        raise customer_lookup.unavailable() from None
    if data is None:
        raise unknown_customer(customer_id, field=field)
    await record(session, data)
    primary = data.merged_into_id
    if primary is not None and hops < MAX_MERGE_HOPS and await get(session, primary) is None:
        await learn(session, primary, field=field, hops=hops + 1)


async def record(session: AsyncSession, data: customer_lookup.CustomerRefData) -> None:
    """A customer as customer-svc answered, at its version. Its merge is recorded as an edge of
    version 0, which the `customer.merged` event (newer) confirms later, re-pointing rows then."""
    await apply_state(
        session,
        data.id,
        version=data.version,
        **{f: getattr(data, f) for f in DATA_FIELDS},
        **_owner(data.owner),
    )
    if data.merged_into_id is not None:
        await session.execute(
            sa.update(refs)
            .where(refs.c.id == data.id, refs.c.merged_into_id.is_(None))
            .values(merged_into_id=data.merged_into_id, merge_version=0)
        )


async def learn_many(session: AsyncSession, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """`learn` for a batch (campaign targets): the ids customer-svc does not know. Lookups run side
    by side (bounded by the lookup); 503 when customer-svc cannot be asked."""
    ids = list(dict.fromkeys(ids))
    lookup, authorization = customer_lookup.current()
    if lookup is None or not ids:
        return set(ids)
    answers = await asyncio.gather(
        *(lookup.fetch(cid, authorization=authorization) for cid in ids), return_exceptions=True
    )
    if any(isinstance(a, customer_lookup.CustomerServiceUnavailable) for a in answers):
        raise customer_lookup.unavailable()
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    missing = set()
    for cid, answer in zip(ids, answers, strict=True):
        if answer is None:
            missing.add(cid)
        else:
            await record(
                session, cast(customer_lookup.CustomerRefData, answer)
            )  # exceptions were raised above
    return missing


async def survivors(session: AsyncSession, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    """{id: survivor} for the given ids that were merged away (the others are absent)."""
    result = {}
    wanted = list(set(ids))
    for i in range(0, len(wanted), 500):
        rows = await session.execute(
            sa.select(refs.c.id).where(refs.c.id.in_(wanted[i : i + 500]), refs.c.merged_into_id.is_not(None))
        )
        for row in rows:
            result[row.id] = await resolve(session, row.id)
    return result


async def names(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Names of the given customers, for list rows; unknown (or unnamed) ones are absent."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(sa.select(refs.c.id, refs.c.full_name).where(refs.c.id.in_(wanted)))
    return {row.id: row.full_name for row in rows if row.full_name is not None}


async def rows_by_id(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, AnyRow]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {row.id: row for row in await session.execute(sa.select(refs).where(refs.c.id.in_(wanted)))}


# --- record scopes -------------------------------------------------------------------------------


def owner_in_scope(scope: "RecordScope") -> sa.ColumnElement[bool]:
    """customer_refs rows whose (known) owner is inside `scope` (crm_common.record_scope: a caller's
    read or write scope). Rows with `owner_known` false are not matched: each use decides what they
    mean (see the module's rules)."""
    return sa.and_(refs.c.owner_known, scope.clause([refs.c.assigned_to_id], refs.c.team_id))


async def outside_scope(
    session: AsyncSession, scope: "RecordScope", ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """The given customers `scope` does not cover, judged as customer-svc would (assignee or team):
    unknown ones, and ones whose owner is not known here even after asking customer-svc (no
    customer-svc to ask: refused rather than guessed)."""
    wanted = list(dict.fromkeys(ids))
    if scope.level == "all" or not wanted:
        return set()

    unsure = []
    for i in range(0, len(wanted), 500):
        part = wanted[i : i + 500]
        rows = await session.execute(sa.select(refs.c.id).where(refs.c.id.in_(part), refs.c.owner_known))
        known = {row.id for row in rows}
        unsure += [cid for cid in part if cid not in known]
    if unsure and customer_lookup.current()[0] is not None:
        await learn_many(session, unsure)
    inside: set[uuid.UUID] = set()
    for i in range(0, len(wanted), 500):
        rows = await session.execute(
            sa.select(refs.c.id).where(refs.c.id.in_(wanted[i : i + 500]), owner_in_scope(scope))
        )
        inside |= {row.id for row in rows}
    return set(wanted) - inside
