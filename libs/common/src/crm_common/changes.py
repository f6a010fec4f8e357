"""Changes feeds (`GET /<resource>/changes`): every record changed after a cursor, and every record
deleted or merged away as a tombstone (`{id, deleted: true, mergedInto}`), in one sync order, so a
mirror that applies them in turn converges on the server's state.

Records come from the service's own list query (the same filters, scopes included), keyset on
(updated_at, id) like the list's cursor mode (crm_common.pagination); tombstones from the service's
`tombstones` table, keyset on (deleted_at, id). Both streams share one position, so one opaque cursor
continues them together. Unlike a list's `next`, the feed's `next` is always given: the position to
ask from next time, whether or not there was more (`hasMore`).
"""

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import sqlalchemy as sa
from alembic import op
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common.db import insert_for
from crm_common.models import UtcDateTime, utcnow
from crm_common.pagination import (
    MAX_PAGE_SIZE,
    PageParams,
    PageSize,
    cursor_window,
    decode_cursor,
    encode_cursor,
    sync_columns,
    sync_frontier,
)
from crm_common.schemas import ApiModel
from crm_common.sql_types import AnySelect

metadata = sa.MetaData()

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("resource", sa.String(40), primary_key=True),
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("merged_into_id", sa.Uuid()),
    sa.Column("deleted_at", UtcDateTime(), nullable=False),
    sa.Index("ix_tombstones_feed", "resource", "deleted_at", "id"),
)


# --- migration -----------------------------------------------------------------------------------


def create_tombstones_v1(*, sync_indexes: Iterable[str] = ()) -> None:
    """For a service's migration (a frozen snapshot: later changes get a `_v2`). `sync_indexes` names
    the service's tables whose lists and feeds page on (updated_at, id): each gets that index."""
    op.create_table(
        "tombstones",
        sa.Column("resource", sa.String(40), primary_key=True),
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("merged_into_id", sa.Uuid()),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_tombstones_feed", "tombstones", ["resource", "deleted_at", "id"])
    for table in sync_indexes:
        op.create_index(f"ix_{table}_sync", table, ["updated_at", "id"])


def sync_index(table: str) -> sa.Index:
    """The (updated_at, id) index `create_tombstones_v1(sync_indexes=...)` builds, for the model's
    `__table_args__` (so autogenerate sees it)."""
    return sa.Index(f"ix_{table}_sync", "updated_at", "id")


def drop_tombstones_v1(*, sync_indexes: Iterable[str] = ()) -> None:
    for table in sync_indexes:
        op.drop_index(f"ix_{table}_sync", table_name=table)
    op.drop_index("ix_tombstones_feed", table_name="tombstones")
    op.drop_table("tombstones")


# --- writing -------------------------------------------------------------------------------------


async def record_deleted(
    session: AsyncSession,
    resource: str,
    ids: Iterable[uuid.UUID],
    *,
    merged_into: uuid.UUID | None = None,
) -> None:
    """Leave tombstones for records this transaction deletes (or merges away into `merged_into`).
    Call it in the deleting transaction, so a feed never shows a record gone without its tombstone."""
    now = utcnow()
    rows = [{"resource": resource, "id": i, "merged_into_id": merged_into, "deleted_at": now} for i in ids]
    if not rows:
        return
    if merged_into is not None:
        # Records merged earlier into one merged away now follow to the new survivor, and show again
        # in the feed: a mirror never keeps pointing at a tombstone.
        await session.execute(
            sa.update(tombstones)
            .where(
                tombstones.c.resource == resource, tombstones.c.merged_into_id.in_([r["id"] for r in rows])
            )
            .values(merged_into_id=merged_into, deleted_at=now)
        )
    insert = insert_for(session, tombstones).values(rows)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=["resource", "id"],
            set_={"merged_into_id": insert.excluded.merged_into_id, "deleted_at": insert.excluded.deleted_at},
        )
    )


# --- reading -------------------------------------------------------------------------------------


class Tombstone(ApiModel):
    """A record that no longer exists: deleted, or merged away into `mergedInto`."""

    id: uuid.UUID
    deleted: Literal[True] = True
    merged_into: uuid.UUID | None = Field(None, description="The survivor, for a record merged into another.")
    deleted_at: datetime


T = TypeVar("T")


class Changes(BaseModel, Generic[T]):
    model_config = ConfigDict(populate_by_name=True)

    items: list[T | Tombstone] = Field(
        description="Records as the list answers them, and tombstones (`deleted: true`), oldest change first."
    )
    next: str = Field(
        description="Where to continue: pass it as `cursor` next time, even when `hasMore` is false."
    )
    has_more: bool = Field(alias="hasMore", description="True when more changes are waiting right now.")


class ChangesParams(BaseModel):
    cursor: str
    page_size: int


async def changes_params(
    cursor: Annotated[
        str,
        Query(
            max_length=200,
            description="Empty (or absent) for the beginning, then the previous answer's `next`.",
        ),
    ] = "",
    page_size: PageSize = MAX_PAGE_SIZE // 2,
) -> ChangesParams:
    decode_cursor(cursor)  # a cursor we did not issue is a 422 here, before any work
    return ChangesParams(cursor=cursor, page_size=page_size)


async def changes_page(
    session: AsyncSession,
    query: AnySelect,
    resource: str,
    params: ChangesParams,
    present: Callable[[Sequence[Any]], Awaitable[Sequence[Any]]],
) -> Changes[Any]:
    """One page of the feed of `resource`: the records of `query` (live ones only) and the tombstones,
    merged in sync order. `present` turns records into what the API answers for them."""
    entity = query.column_descriptions[0]["entity"]
    paging = PageParams(page=1, page_size=params.page_size, sort=None, cursor_mode=True)
    paging.after = decode_cursor(params.cursor)
    limit = params.page_size + 1
    # One frontier for both streams: the cursor moves past no change of either that is still to come.
    frontier = await sync_frontier(session)
    window = await cursor_window(session, query, paging, entity, frontier=frontier)
    records = list((await session.execute(window.limit(limit))).scalars())
    dead = (await session.execute(_tombstone_window(resource, paging, frontier).limit(limit))).all()
    changed, _, _ = sync_columns(entity)
    keyed = [((getattr(r, changed.key), r.id), r) for r in records]
    keyed += [
        ((t.deleted_at, t.id), Tombstone(id=t.id, merged_into=t.merged_into_id, deleted_at=t.deleted_at))
        for t in dead
    ]
    keyed.sort(key=lambda pair: pair[0])
    has_more = len(keyed) > params.page_size
    keyed = keyed[: params.page_size]
    if keyed:
        at, ident = keyed[-1][0]
        next_cursor = encode_cursor(at, ident)
    else:
        next_cursor = params.cursor
    shown = iter(await present([item for _, item in keyed if not isinstance(item, Tombstone)]))
    items = [item if isinstance(item, Tombstone) else next(shown) for _, item in keyed]
    return Changes(items=items, next=next_cursor, has_more=has_more)


def _tombstone_window(resource: str, paging: PageParams, frontier: datetime | None) -> AnySelect:
    t = tombstones.c
    query = sa.select(tombstones).where(t.resource == resource)
    if frontier is not None:
        query = query.where(t.deleted_at <= frontier)
    if paging.after is not None:
        at = paging.after
        query = query.where(
            sa.or_(t.deleted_at > at.updated_at, sa.and_(t.deleted_at == at.updated_at, t.id > at.id))
        )
    return query.order_by(t.deleted_at, t.id)
