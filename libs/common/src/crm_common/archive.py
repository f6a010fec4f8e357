"""Archive, restore and purge: one way for every archivable resource (customers, opportunities,
activities, tickets, campaigns).

- A record is archived when its `archived_at` is set: lists, searches, exports and totals leave it out
  unless asked (`?archived=include|only`), a get by id still answers it (with `archivedAt`) so it can
  be restored, and a write to it is a 409 `ARCHIVED` (restore it first).
- `POST .../{id}/archive` and `.../restore` are actions like the others: the write permission and
  scope, an optional `If-Match`, a new version and `updatedAt`; repeating one is a 200 with the record
  unchanged (no new version, no event).
- Archiving is an update to mirrors (the changes feed answers the record with `archivedAt`); once it
  has stayed archived for the retention (`CRM_ARCHIVE_RETENTION_DAYS`, 30 by default) a periodic task
  purges it: deleted with its dependents, a tombstone in the changes feed and a `<type>.purged` event.

    archived_at: datetime | None = archived_at_field()      # the model
    add_archived_at_v1("customers")                          # its migration
    query.where(archived_clause(Customer.archived_at, archived))  # the list, `archived: ArchivedParam`
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from alembic import op
from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncSession

from crm_common import changes
from crm_common.concurrency import check_version
from crm_common.db import Database
from crm_common.errors import ProblemError
from crm_common.models import Field, UtcDateTime, utcnow

log = logging.getLogger("crm.archive")

ArchivedMode = Literal["exclude", "include", "only"]
ArchivedParam = Annotated[
    ArchivedMode,
    Query(
        description="Archived records: left out (`exclude`, the default), shown with the others "
        "(`include`) or alone (`only`)."
    ),
]


# --- documentation of the actions (the same words in every service's OpenAPI) ----------------------

_REPEAT = (
    " Needs write access to the record; `If-Match` is optional (412 when stale). Repeating it answers 200 "
    "with the record unchanged (no new version, no event). See docs/api-guide.md, Archive."
)


def archive_description(hidden_from: str, purged_event: str) -> str:
    return (
        f"The record leaves {hidden_from} (`?archived=include|only` shows it) and takes no changes (409 "
        "`ARCHIVED`) until restored; a get still answers it with `archivedAt`. After the archive retention "
        "(`CRM_ARCHIVE_RETENTION_DAYS`, 30 days by default) it is purged: deleted, "
        f"`{purged_event}`, a tombstone in the changes feed." + _REPEAT
    )


RESTORE_DESCRIPTION = "The record is live again (`archivedAt` null); a purged one is gone (404)." + _REPEAT


# --- model and migration ---------------------------------------------------------------------------


def archived_at_field() -> Any:
    return Field(default=None, sa_type=UtcDateTime(), nullable=True)


def archived_index(table: str) -> sa.Index:
    """The index `add_archived_at_v1` builds, for the model's `__table_args__` (autogenerate sees it).
    It serves `archived=only` and the purge's scan; the default filter (`archived_at IS NULL`) keeps
    riding the list's own indexes, as nearly every row is live."""
    return sa.Index(f"ix_{table}_archived_at", "archived_at")


def add_archived_at_v1(table: str) -> None:
    """For a service's migration (a frozen snapshot: later changes get a `_v2`). A plain add_column:
    on SQLite a batch (table-copying) alter would drop the table's triggers."""
    op.add_column(table, sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(f"ix_{table}_archived_at", table, ["archived_at"])


def drop_archived_at_v1(table: str) -> None:
    op.drop_index(f"ix_{table}_archived_at", table_name=table)
    op.drop_column(table, "archived_at")


# --- reading ---------------------------------------------------------------------------------------


def archived_clause(column: Any, mode: ArchivedMode = "exclude") -> sa.ColumnElement[bool]:
    """The WHERE condition for `?archived=` on the model's `archived_at` (a column; SQLModel types the
    class attribute as its row value, hence Any)."""
    archived_at: sa.ColumnElement[datetime | None] = column
    if mode == "include":
        return sa.true()
    if mode == "only":
        return archived_at.is_not(None)
    return archived_at.is_(None)


def archived_error(resource: str, record_id: uuid.UUID) -> ProblemError:
    return ProblemError(
        409,
        "ARCHIVED",
        f"The {resource} {record_id} is archived: restore it (POST .../{record_id}/restore) to change it.",
        extra={"id": str(record_id)},
    )


def check_not_archived(record: Any, resource: str) -> None:
    """409 `ARCHIVED` for a write to an archived record (nothing is written)."""
    if record.archived_at is not None:
        raise archived_error(resource, record.id)


# --- writing ---------------------------------------------------------------------------------------


async def set_archived(session: AsyncSession, record: Any, archived: bool, *, if_match: str | None) -> bool:
    """Archive (or restore) a record the caller may write, already loaded. A stale `If-Match` is a
    412. Returns False, changing nothing, when it already is in that state."""
    if if_match is not None:
        check_version(record.version, if_match=if_match, body_version=None)
    if (record.archived_at is not None) == archived:
        return False
    now = utcnow()
    record.archived_at = now if archived else None
    record.updated_at = now
    await session.flush()  # the ORM's version counter: a racing write is a 412
    return True


# --- purge -----------------------------------------------------------------------------------------

# Called in the purging transaction with the records about to be deleted: adds their `<type>.purged`
# events and deletes what depends on them (rows without an ON DELETE CASCADE).
OnPurge = Callable[[AsyncSession, Sequence[Any]], Awaitable[None]]
PURGE_BATCH = 200


async def purge_archived(
    db: Database,
    model: Any,
    *,
    resource: str,
    retention: timedelta,
    on_purge: OnPurge,
    now: datetime | None = None,
) -> int:
    """Delete the records of `model` archived longer than `retention` before `now`, in batches (one
    transaction each, so a failure loses at most its batch, redone at the next round), leaving a
    tombstone for each; returns how many."""
    cutoff = (now or utcnow()) - retention
    removed = 0
    while True:
        async with db.transaction() as session:
            query = (
                sa.select(model)
                .where(model.archived_at < cutoff)
                .order_by(model.archived_at, model.id)
                .limit(PURGE_BATCH)
                .with_for_update(skip_locked=True)
            )
            records = list((await session.execute(query)).scalars())
            if not records:
                break
            ids = [r.id for r in records]
            await on_purge(session, records)
            # Locked above (Postgres; SQLite writes one at a time): a restore racing this waits, then
            # finds the record gone (404) or changed (412).
            await session.execute(
                sa.delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False)
            )
            await changes.record_deleted(session, resource, ids)
            removed += len(records)
        if len(records) < PURGE_BATCH:
            break
    if removed:
        log.info("archive retention: purged %d %s records archived before %s", removed, resource, cutoff)
    return removed


async def keep_purging(name: str, purge: Callable[[], Awaitable[int]], every: float) -> None:
    """A service's background task (like the inbox's retention): purge now, then every `every`
    seconds. A failed round (the database away) is logged and tried again at the next."""
    while True:
        try:
            await purge()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s: archive purge failed; trying again in %.0f s", name, every, exc_info=True)
        await asyncio.sleep(every)
