"""timelines, completion, follow-ups, customer refs and idempotency keys

Revision ID: 3df7e8108569
Revises: 546f29710191
Create Date: 2026-11-25 14:58:23.277975
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from crm_common.idempotency import create_idempotency_table_v1, drop_idempotency_table_v1

revision: str = "3df7e8108569"
down_revision: str | None = "546f29710191"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_refs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("customer_number", sa.String(length=32), nullable=True),
        sa.Column("full_name", sa.String(length=300), nullable=True),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("customer_refs", schema=None) as batch_op:
        batch_op.create_index("ix_customer_refs_merged_into_id", ["merged_into_id"], unique=False)

    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("follow_up_of_id", sa.Uuid(), nullable=True))
        # Single-column indexes replaced by the (x, start_date, id) timeline indexes below.
        batch_op.drop_index("ix_activities_customer_id")
        batch_op.drop_index("ix_activities_customer_start")
        batch_op.drop_index("ix_activities_opportunity_id")
        batch_op.drop_index("ix_activities_owner_id")
        batch_op.drop_index("ix_activities_ticket_id")
        batch_op.create_index(
            "ix_activities_customer_timeline", ["customer_id", "start_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_activities_opportunity_timeline", ["opportunity_id", "start_date", "id"], unique=False
        )
        batch_op.create_index(
            "ix_activities_ticket_timeline", ["ticket_id", "start_date", "id"], unique=False
        )
        batch_op.create_index("ix_activities_owner_start", ["owner_id", "start_date"], unique=False)
        batch_op.create_index("ix_activities_follow_up_of_id", ["follow_up_of_id"], unique=False)

    create_idempotency_table_v1()


def downgrade() -> None:
    drop_idempotency_table_v1()
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_follow_up_of_id")
        batch_op.drop_index("ix_activities_owner_start")
        batch_op.drop_index("ix_activities_ticket_timeline")
        batch_op.drop_index("ix_activities_opportunity_timeline")
        batch_op.drop_index("ix_activities_customer_timeline")
        batch_op.create_index("ix_activities_ticket_id", ["ticket_id"], unique=False)
        batch_op.create_index("ix_activities_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_activities_opportunity_id", ["opportunity_id"], unique=False)
        batch_op.create_index("ix_activities_customer_start", ["customer_id", "start_date"], unique=False)
        batch_op.create_index("ix_activities_customer_id", ["customer_id"], unique=False)
        batch_op.drop_column("follow_up_of_id")
        batch_op.drop_column("completed_at")

    with op.batch_alter_table("customer_refs", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_refs_merged_into_id")

    op.drop_table("customer_refs")
