"""customer search on SQLite: an FTS5 trigram index, the counterpart of Postgres' pg_trgm index

Revision ID: c2f4a8e1b9d7
Revises: a6e1c0d3f2b8
Create Date: 2026-12-07 16:00:00

SQLite has no index for `LIKE '%term%'`: every search read every customer's search text (about
8 ms at 10k customers, every request). `customer_search` holds the same text per customer (its
rowid is the customer's), kept by triggers, so no code path can leave it behind. The search asks it
for candidates (a trigram phrase: any 3 or more characters) and keeps the exact LIKE over them
(customer_svc.service.query), so the answers do not change.

A batch (table-copying) alter of `customers` on SQLite would drop these triggers and may renumber
rowids: such a migration must run `REBUILD` below again after it. Without FTS5's trigram tokenizer
(SQLite before 3.34, or built without FTS5) nothing is created and the search reads every row.
"""

import logging
from collections.abc import Sequence

from alembic import op
from crm_common.db import sqlite_has_trigram_search

revision: str = "c2f4a8e1b9d7"
down_revision: str | None = "a6e1c0d3f2b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


def _text(row: str) -> str:
    # The fields the search reads, separated as in its LIKE (char 31); a missing one is empty.
    fields = ("customer_number", "full_name", "email", "company_name")
    return " || char(31) || ".join(f"coalesce({row}.{f}, '')" for f in fields)


TRIGGERS = [
    "CREATE TRIGGER customer_search_on_insert AFTER INSERT ON customers BEGIN "
    f"INSERT INTO customer_search (rowid, search) VALUES (NEW.rowid, {_text('NEW')}); END",
    "CREATE TRIGGER customer_search_on_update AFTER UPDATE OF customer_number, full_name, email, "
    f"company_name ON customers BEGIN UPDATE customer_search SET search = {_text('NEW')} "
    "WHERE rowid = NEW.rowid; END",
    "CREATE TRIGGER customer_search_on_delete AFTER DELETE ON customers BEGIN "
    "DELETE FROM customer_search WHERE rowid = OLD.rowid; END",
]
REBUILD = [
    "DELETE FROM customer_search",
    f"INSERT INTO customer_search (rowid, search) SELECT rowid, {_text('customers')} FROM customers",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    if not sqlite_has_trigram_search():
        log.warning("SQLite has no FTS5 trigram tokenizer: customer search reads every row")
        return
    op.execute("CREATE VIRTUAL TABLE customer_search USING fts5(search, tokenize='trigram')")
    for statement in TRIGGERS + REBUILD:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in ("customer_search_on_insert", "customer_search_on_update", "customer_search_on_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.execute("DROP TABLE IF EXISTS customer_search")
