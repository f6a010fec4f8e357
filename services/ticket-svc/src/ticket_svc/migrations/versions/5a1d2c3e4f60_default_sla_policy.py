"""default SLA policy: every priority has targets on a fresh install

A data migration, run once: a policy an admin later edits, deactivates or deletes stays as the
admin left it (nothing re-creates it). Installs that already have a policy get none.

Revision ID: 5a1d2c3e4f60
Revises: 744184e079cb
Create Date: 2026-12-06 07:00:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5a1d2c3e4f60"
down_revision: str | None = "744184e079cb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Fixed ids, so the downgrade removes exactly this policy (and only while no ticket uses it).
POLICY_ID = uuid.UUID("5a1d2c3e-4f60-4d8a-9b1e-000000000001")
REVISION_ID = uuid.UUID("5a1d2c3e-4f60-4d8a-9b1e-000000000002")
NAME = "Standard support (default)"
DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
# Minutes to first response and to resolution, per ticket priority: the common help-desk defaults.
TARGETS = [
    {"priority": "URGENT", "firstResponseMinutes": 60, "resolutionMinutes": 240},
    {"priority": "HIGH", "firstResponseMinutes": 240, "resolutionMinutes": 1440},
    {"priority": "NORMAL", "firstResponseMinutes": 480, "resolutionMinutes": 2880},
    {"priority": "LOW", "firstResponseMinutes": 1440, "resolutionMinutes": 7200},
]
# Around the clock in UTC: no guess at the company's time zone or working week; an admin narrows
# it (PATCH /api/v1/sla-policies/{id}) to business hours in their own zone.
HOURS = [{"day": day, "start": "00:00", "end": "24:00"} for day in DAYS]
PAUSE = ["PENDING"]

json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
policies = sa.table(
    "sla_policies",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("description", sa.Text()),
    sa.column("is_active", sa.Boolean()),
    sa.column("team_id", sa.Uuid()),
    sa.column("customer_priority", sa.String()),
    sa.column("targets", json_type),
    sa.column("time_zone", sa.String()),
    sa.column("business_hours", json_type),
    sa.column("holidays", json_type),
    sa.column("pause_statuses", json_type),
    sa.column("revision_id", sa.Uuid()),
    sa.column("created_by_id", sa.Uuid()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("version", sa.Integer()),
)
revisions = sa.table(
    "sla_revisions",
    sa.column("id", sa.Uuid()),
    sa.column("policy_id", sa.Uuid()),
    sa.column("policy_version", sa.Integer()),
    sa.column("snapshot", json_type),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
tickets = sa.table("tickets", sa.column("sla_revision_id", sa.Uuid()))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.select(sa.func.count()).select_from(policies)).scalar_one():
        return
    now = datetime.now(UTC)
    snapshot = {
        "policyId": str(POLICY_ID),
        "name": NAME,
        "timeZone": "UTC",
        "businessHours": HOURS,
        "holidays": [],
        "pauseStatuses": PAUSE,
        "targets": TARGETS,
    }
    bind.execute(
        revisions.insert().values(
            id=REVISION_ID, policy_id=POLICY_ID, policy_version=1, snapshot=snapshot, created_at=now
        )
    )
    bind.execute(
        policies.insert().values(
            id=POLICY_ID,
            name=NAME,
            description="Shipped with the CRM: around the clock, targets for every priority. Edit or replace it.",
            is_active=True,
            team_id=None,
            customer_priority=None,
            targets=TARGETS,
            time_zone="UTC",
            business_hours=HOURS,
            holidays=[],
            pause_statuses=PAUSE,
            revision_id=REVISION_ID,
            created_by_id=None,
            created_at=now,
            updated_at=now,
            version=1,
        )
    )


def downgrade() -> None:
    bind = op.get_bind()
    in_use = bind.execute(
        sa.select(sa.func.count()).select_from(tickets).where(tickets.c.sla_revision_id == REVISION_ID)
    ).scalar_one()
    if in_use:
        return  # tickets run on it: it stays, as an admin-made policy would
    bind.execute(policies.delete().where(policies.c.id == POLICY_ID))
    bind.execute(revisions.delete().where(revisions.c.policy_id == POLICY_ID))
