"""Events a family's parents may see: an audience row may name a family (`family_id`, read with its
position in the log), and `parent_link` keeps which family each parent's account belongs to, from
guidance's `family.linked`.

Revision ID: delivery_0003
Revises: delivery_0002
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0003"
down_revision: str | None = "delivery_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("event_audience", sa.Column("family_id", sa.String(36), nullable=True))
    op.create_index("ix_event_audience_family", "event_audience", ["family_id", "event_seq"])
    op.create_table(
        "parent_link",
        sa.Column("parent_id", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_parent_link_family_id", "parent_link", ["family_id"])


def downgrade() -> None:
    op.drop_index("ix_parent_link_family_id", table_name="parent_link")
    op.drop_table("parent_link")
    op.drop_index("ix_event_audience_family", table_name="event_audience")
    with op.batch_alter_table("event_audience") as batch:
        batch.drop_column("family_id")
