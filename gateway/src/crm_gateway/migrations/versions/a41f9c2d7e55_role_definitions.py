"""role definitions (permissions and record scopes) as data

Revision ID: a41f9c2d7e55
Revises: b7d2e4f61a93
Create Date: 2026-12-06 23:45:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import crm_common.models
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "a41f9c2d7e55"
down_revision: str | None = "b7d2e4f61a93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The defaults of issue 13 as they stand today (a frozen snapshot, not crm_common.auth, which may move on).
DATA = ("customers", "sales", "activities", "tickets", "campaigns")


def _rw(*contexts: str) -> list[str]:
    return [f"{c}:{a}" for c in contexts for a in ("read", "write")]


def _r(*contexts: str) -> list[str]:
    return [f"{c}:read" for c in contexts]


def _scopes(default: str, **per_context: str) -> dict[str, Any]:
    return {c: {"read": per_context.get(c, default), "write": per_context.get(c, default)} for c in DATA}


ROLES = {
    "admin": ([*_rw(*DATA, "webhooks"), "admin"], _scopes("all")),
    "sales_manager": (
        [*_rw("customers", "sales", "activities", "campaigns"), *_r("tickets")],
        _scopes("team"),
    ),
    "sales_rep": ([*_rw("customers", "sales", "activities"), *_r("tickets", "campaigns")], _scopes("team")),
    "support_agent": (
        [*_rw("customers", "tickets", "activities"), *_r("sales")],
        _scopes("team", tickets="all"),
    ),
    "marketer": (
        [*_rw("customers", "campaigns", "activities"), *_r("sales")],
        _scopes("team", campaigns="all"),
    ),
    "read_only": (_r(*DATA), _scopes("all")),
}


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("permissions", json_type, nullable=False),
        sa.Column("scopes", json_type, nullable=False),
        sa.Column("updated_at", crm_common.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        roles,
        [
            {"name": name, "permissions": sorted(perms), "scopes": scopes, "updated_at": now, "version": 1}
            for name, (perms, scopes) in ROLES.items()
        ],
    )


def downgrade() -> None:
    op.drop_table("roles")
