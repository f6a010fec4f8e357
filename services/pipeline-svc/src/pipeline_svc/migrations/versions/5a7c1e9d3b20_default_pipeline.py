"""default pipeline: the six stages a fresh install starts with

Revision ID: 5a7c1e9d3b20
Revises: fcde94b4114d
Create Date: 2026-11-25 15:10:00

A data migration rather than a seed at startup: it runs exactly once per database, in the same
transaction (and under the same advisory lock) as the schema it needs, so replicas starting together
never race to insert it, and stages an administrator later renames, deactivates or deletes are not
brought back on the next start. The ids are fixed (uuid5 of the stage name), the same on every install.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "5a7c1e9d3b20"
down_revision: str | None = "fcde94b4114d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:crm:pipeline:default-stage")

# (name, probability, sortOrder, color, isWon, isLost)
STAGES = (
    ("Prospecting", 10, 10, "#94A3B8", False, False),
    ("Qualification", 25, 20, "#3B82F6", False, False),
    ("Proposal", 50, 30, "#8B5CF6", False, False),
    ("Negotiation", 75, 40, "#F59E0B", False, False),
    ("Closed Won", 100, 50, "#22C55E", True, False),
    ("Closed Lost", 0, 60, "#EF4444", False, True),
)

# A frozen snapshot of the columns this migration writes; the model may change later.
stages = sa.table(
    "opportunity_stages",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("description", sa.String()),
    sa.column("probability", sa.Integer()),
    sa.column("sort_order", sa.Integer()),
    sa.column("color", sa.String()),
    sa.column("is_active", sa.Boolean()),
    sa.column("is_won", sa.Boolean()),
    sa.column("is_lost", sa.Boolean()),
    sa.column("requirements", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("version", sa.Integer()),
)


def stage_id(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def upgrade() -> None:
    now = datetime.now(UTC)
    op.bulk_insert(
        stages,
        [
            {
                "id": stage_id(name),
                "name": name,
                "description": None,
                "probability": probability,
                "sort_order": sort_order,
                "color": color,
                "is_active": True,
                "is_won": is_won,
                "is_lost": is_lost,
                "requirements": [],
                "created_at": now,
                "updated_at": now,
                "version": 1,
            }
            for name, probability, sort_order, color, is_won, is_lost in STAGES
        ],
    )


def downgrade() -> None:
    ids = [stage_id(s[0]) for s in STAGES]
    op.execute(stages.delete().where(stages.c.id.in_(ids)))
