"""initial schema

Revision ID: eafbf3eb57f7
Revises:
Create Date: 2026-11-25 14:26:06.540712
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from crm_common.events.tables import create_event_tables_v1, drop_event_tables_v1
from sqlalchemy.dialects import postgresql

revision: str = "eafbf3eb57f7"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("customer_id", sa.Uuid(), nullable=True),
        sa.Column("opportunity_id", sa.Uuid(), nullable=True),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("start_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("is_all_day", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.Column("next_steps", sa.Text(), nullable=True),
        sa.Column("follow_up_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "attachments",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "links",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("system", sa.Boolean(), nullable=False),
        sa.Column("source_event_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_event_id"),
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activities_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_activities_customer_start", ["customer_id", "start_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_opportunity_id"), ["opportunity_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_start_date"), ["start_date"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_activities_type"), ["type"], unique=False)

    op.create_table(
        "activity_participants",
        sa.Column("activity_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(["activity_id"], ["activities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("activity_id", "user_id"),
    )
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_participants_user_id"), ["user_id"], unique=False)

    create_event_tables_v1()


def downgrade() -> None:
    drop_event_tables_v1()
    with op.batch_alter_table("activity_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activity_participants_user_id"))

    op.drop_table("activity_participants")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activities_type"))
        batch_op.drop_index(batch_op.f("ix_activities_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_activities_status"))
        batch_op.drop_index(batch_op.f("ix_activities_start_date"))
        batch_op.drop_index(batch_op.f("ix_activities_owner_id"))
        batch_op.drop_index(batch_op.f("ix_activities_opportunity_id"))
        batch_op.drop_index("ix_activities_customer_start")
        batch_op.drop_index(batch_op.f("ix_activities_customer_id"))
        batch_op.drop_index(batch_op.f("ix_activities_created_at"))

    op.drop_table("activities")
